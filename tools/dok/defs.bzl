"""`dok_flow`: Bazel targets for a dok flow (run it locally, build its image, run it on Kubernetes, test it).

    load("@dok//tools/dok:defs.bzl", "dok_flow")     # inside the dok repository: "//tools/dok:defs.bzl"

    dok_flow(
        name = "fanout",
        src = "fanout.py",
        deps = ["//examples/lib:wordlib"],           # the flow's own py_library targets
        python_dependencies = ["toolz==1.0.0"],     # pip pins for the image (must match the interpreter's)
        max_workers = 3,
        params = {"n": 60},
    )

creates
  :fanout_local   `bazel run`: the flow in-process on a local Dask cluster (`dok run --local`)
  :fanout_image   `bazel run`: builds the flow's image (content-hash tag, skipped when it exists), prints
                  the image reference on stdout (`dok build`)
  :fanout         `bazel run`: builds the image and runs the flow on the configured Kubernetes cluster, exits
                  with the flow's exit code; arguments after `--` go to `dok run` (e.g. `-- --max-workers 2`)
  :fanout_test    `bazel test`: runs the flow locally (with `test_params`), fails when the flow fails
  :fanout_spec    the generated spec (<name>.dokflow.json) and entry point (<name>_main.py) behind them.

How the flow's Python dependencies reach the pod (what runs locally is what runs there):
  - `deps` (py_library targets; `data` files too): every source and data file in their runfiles, except what
    dok itself provides (dok.core, dok.runner, … are in every image already), is added to the image's `files`
    at /opt/flow/runfiles/<runfiles path>, the same layout as in the local run's runfiles tree, and the image's
    PYTHONPATH gets the same import roots Bazel gives the local run: the flow's own directory, each py_library's
    `imports`, and each repository's root. So `import wordlib` (a py_library with imports = ["."]) or
    `import examples.lib.wordlib` work the same locally and in the pod.
  - `python_dependencies`: pip requirement strings, installed in the image (`python_dependencies` of the
    environment). Locally the flow runs on Bazel's Python interpreter, so each `name==version` pin is checked
    against the version installed there: `_test` fails on a mismatch, `_local` warns.
  The flow file itself travels in the flow bundle (pickled by value), as with `dok run FILE`.
"""

_IMAGE_ROOT = "/opt/flow/runfiles"

# The Python side of the targets (dok.launcher's CLI, dok.builder, dok.runner, dok.core) and the code that drives
# it. Label() resolves against this file's repository: `@dok//tools/dok:flow_target` from another workspace.
_FLOW_TARGET = Label("//tools/dok:flow_target")

def _runfiles_path(ctx, f):
    """The path of `f` below a runfiles root: `<workspace>/<path>`, or `<repository>/<path>` for external ones."""
    if f.short_path.startswith("../"):
        return f.short_path[3:]
    return ctx.workspace_name + "/" + f.short_path

def _dok_flow_spec_impl(ctx):
    src = ctx.file.src
    provided = {}
    runtime = ctx.attr._flow_target
    for f in runtime[PyInfo].transitive_sources.to_list() + runtime[DefaultInfo].default_runfiles.files.to_list():
        provided[f.path] = True

    shipped = {}
    imports = []
    repositories = []
    for dep in ctx.attr.deps + ctx.attr.data:
        candidates = dep[DefaultInfo].default_runfiles.files.to_list() + dep[DefaultInfo].files.to_list()
        if PyInfo in dep:
            candidates += dep[PyInfo].transitive_sources.to_list()
            for imp in dep[PyInfo].imports.to_list():
                if imp not in imports:
                    imports.append(imp)
        for f in candidates:
            if f.path in provided or f == src or f.is_directory:
                continue
            path = _runfiles_path(ctx, f)
            shipped[path] = True
            repository = path.split("/")[0]
            if repository not in repositories:
                repositories.append(repository)

    flow = _runfiles_path(ctx, src)
    pythonpath = []
    if shipped:
        # The order of the local run's sys.path: the flow's directory (dok puts it first), the py_library
        # `imports`, then every repository root.
        roots = [flow.rsplit("/", 1)[0]] + imports + repositories
        for root in roots:
            entry = _IMAGE_ROOT + "/" + root
            if entry not in pythonpath:
                pythonpath.append(entry)

    flow_label = ctx.label.relative(ctx.label.name[:-len("_spec")])
    spec = struct(
        label = str(flow_label),
        flow = flow,
        attr = ctx.attr.flow_attr or None,
        params = json.decode(ctx.attr.params_json),
        test_params = json.decode(ctx.attr.test_params_json),
        max_workers = ctx.attr.max_workers if ctx.attr.max_workers > 0 else None,
        min_workers = ctx.attr.min_workers if ctx.attr.min_workers >= 0 else None,
        base_image = ctx.attr.base_image or None,
        registry = ctx.attr.registry or None,
        python_dependencies = ctx.attr.python_dependencies,
        files = [struct(runfiles = p, image = _IMAGE_ROOT + "/" + p) for p in sorted(shipped)],
        pythonpath = pythonpath,
    )
    ctx.actions.write(ctx.outputs.spec, json.encode_indent(spec, indent = "  ") + "\n")

    # The entry point finds the runfiles root from its own place: <root>/<workspace>/<package>/<name>_main.py.
    depth = 1 + len([p for p in ctx.label.package.split("/") if p])
    ctx.actions.write(ctx.outputs.main, "\n".join([
        "# Generated by dok_flow (%s): the entry point of its _local, _image, _test and run targets." % flow_label,
        "import os",
        "import sys",
        "",
        "from dok_flow_target import main",
        "",
        "here = os.path.dirname(os.path.abspath(__file__))",
        "root = os.path.normpath(os.path.join(here, *[os.pardir] * %d))" % depth,
        "sys.exit(main(os.path.join(here, %r), runfiles_root=root, argv=sys.argv[1:]))" % ctx.outputs.spec.basename,
        "",
    ]))
    runfiles = ctx.runfiles(files = [ctx.outputs.spec, ctx.outputs.main, src])
    for dep in ctx.attr.deps + ctx.attr.data:
        runfiles = runfiles.merge(dep[DefaultInfo].default_runfiles)
    return [DefaultInfo(files = depset([ctx.outputs.spec, ctx.outputs.main]), runfiles = runfiles)]

_dok_flow_spec = rule(
    implementation = _dok_flow_spec_impl,
    doc = "The JSON spec and the entry point of a dok_flow (private; use the dok_flow macro).",
    attrs = {
        "src": attr.label(allow_single_file = [".py"], mandatory = True, doc = "The flow file."),
        "deps": attr.label_list(doc = "py_library targets of the flow; their files are shipped into the image."),
        "data": attr.label_list(allow_files = True, doc = "Run-time files of the flow, shipped like the deps'."),
        "flow_attr": attr.string(doc = "The Flow's attribute in `src` (FILE:ATTR); empty: dok's default."),
        "params_json": attr.string(default = "{}", doc = "Flow parameters of every run, as a JSON object."),
        "test_params_json": attr.string(default = "{}", doc = "Flow parameters of the _test run, as JSON."),
        "max_workers": attr.int(default = 0, doc = "--max-workers; 0: not given."),
        "min_workers": attr.int(default = -1, doc = "--min-workers; -1: not given."),
        "base_image": attr.string(doc = "--base-image; empty: not given."),
        "registry": attr.string(doc = "--registry; empty: not given."),
        "python_dependencies": attr.string_list(doc = "pip requirements for the image (--python-dependency)."),
        "spec": attr.output(mandatory = True, doc = "The JSON spec written (<name>.dokflow.json)."),
        "main": attr.output(mandatory = True, doc = "The entry point written (<name>_main.py)."),
        "_flow_target": attr.label(
            default = _FLOW_TARGET,
            doc = "dok's side of the targets; its files are what dok provides, never shipped as the flow's.",
        ),
    },
)

def dok_flow(
        name,
        src,
        deps = [],
        data = [],
        python_dependencies = [],
        params = {},
        test_params = None,
        max_workers = None,
        min_workers = None,
        flow_attr = None,
        base_image = None,
        registry = None,
        test_size = "small",
        tags = [],
        test_tags = [],
        visibility = None):
    """Targets to run, build, launch and test the dok flow defined in `src`.

    Args:
      name: the flow target's name; the others are `<name>_local`, `<name>_image`, `<name>_test`, `<name>_spec`.
      src: the flow file (a .py file defining a dok `Flow`, as given to `dok run FILE`).
      deps: py_library targets the flow imports. Their sources and data files (but not dok's own packages)
        are on the local run's path and are copied into the image under /opt/flow/runfiles, with PYTHONPATH set
        to the same import roots. dok itself (core, launcher, builder, runner) is added by the macro.
      data: files the flow reads at run time, in the runfiles locally and copied into the image like the deps'
        files. Find them from a module imported from `deps` (its `__file__` is its runfiles/image location, as
        examples/lib/wordlib.py does): the flow file itself travels pickled, so its own `__file__` is a path on
        the machine that built the bundle.
      python_dependencies: pip requirements installed into the image, e.g. ["toolz==1.0.0"]. `name==version`
        pins must match the version installed in Bazel's Python interpreter: the `_test` fails otherwise, the
        `_local` run warns.
      params: flow parameters for every run (`--param NAME=VALUE`, values JSON-encoded); a `--param` with the
        same name on the command line (`bazel run :name -- --param n=5`) replaces the default given here.
      test_params: parameters for the `_test` run (e.g. a smaller input); default: `params`.
      max_workers: most Dask workers (`--max-workers`), for the cluster and for the local runs; default: the
        flow environment's value (or dok's default).
      min_workers: fewest Dask workers (`--min-workers`); default: the environment's value.
      flow_attr: which Flow in `src` (`FILE:ATTR`), when it defines several.
      base_image: the image's base (`--base-image`); default: $DOK_BASE_IMAGE, else the environment's.
      registry: registry to tag and push the image for (`--registry`); default: the environment's (none: the
        image stays local, e.g. loaded into the local cluster).
      test_size: Bazel size of the `_test` target (a local Dask cluster starts in a few seconds).
      tags: tags for every generated target.
      test_tags: extra tags for the `_test` target only (e.g. ["exclusive"]).
      visibility: visibility of the generated targets.
    """
    if max_workers != None and max_workers < 1:
        fail("dok_flow(%s): max_workers must be >= 1, got %r" % (name, max_workers))
    if min_workers != None and min_workers < 0:
        fail("dok_flow(%s): min_workers must be >= 0, got %r" % (name, min_workers))
    spec = name + "_spec"
    spec_file = name + ".dokflow.json"
    main = name + "_main.py"
    _dok_flow_spec(
        name = spec,
        src = src,
        deps = deps,
        data = data,
        flow_attr = flow_attr or "",
        params_json = json.encode(params),
        test_params_json = json.encode(params if test_params == None else test_params),
        max_workers = max_workers or 0,
        min_workers = -1 if min_workers == None else min_workers,
        base_image = base_image or "",
        registry = registry or "",
        python_dependencies = python_dependencies,
        spec = spec_file,
        main = main,
        tags = tags,
        visibility = visibility,
    )
    common = dict(
        srcs = [main],
        main = main,
        deps = deps + [_FLOW_TARGET],
        data = [":" + spec, src] + data,
        python_version = "PY3",
        srcs_version = "PY3",
        # No __init__.py files made up in the runfiles: one at <runfiles>/dok/ would make the dok repository's
        # root the `dok` package and hide the dok.* namespace packages (a workspace without
        # --incompatible_default_to_explicit_init_py gets them otherwise).
        legacy_create_init = False,
        visibility = visibility,
    )
    native.py_binary(name = name + "_local", args = ["local"], tags = tags, **common)
    native.py_binary(name = name + "_image", args = ["image"], tags = tags, **common)
    native.py_binary(name = name, args = ["run"], tags = tags, **common)
    native.py_test(name = name + "_test", args = ["test"], size = test_size, tags = tags + test_tags, **common)
