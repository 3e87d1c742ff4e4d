"""`dok_pytest`: a py_test that runs pytest on its sources, with results in Bazel's test.xml."""

def dok_pytest(name, srcs, deps = [], data = [], size = "small", tags = [], args = [], **kwargs):
    native.py_test(
        name = name,
        srcs = srcs + ["//tools/build:pytest_main.py"],
        main = "//tools/build:pytest_main.py",
        deps = deps,
        data = data + ["@dok_venv//:lock.sha"],  # a pin change re-runs every test
        size = size,
        tags = tags,
        args = args + [native.package_name() + "/" + s for s in srcs if s.split("/")[-1].startswith("test_")],
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )
