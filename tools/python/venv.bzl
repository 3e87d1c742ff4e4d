"""Repository rule exposing the project's virtualenv (made by tools/bazel) as the Python interpreter."""

def _dok_venv_impl(ctx):
    lock = ctx.read(ctx.attr.lock)
    venv = ctx.os.environ.get("DOK_VENV", "/var/cache/dok/venv")
    python = venv + "/bin/python3"
    if not ctx.path(python).exists:
        fail("dok: no virtualenv at %s. Run Bazel through tools/bazel, which creates it from requirements.lock." % venv)
    ctx.file("BUILD", """
exports_files(["lock.sha"])
""")

    # Recording the lock content makes this repository (and the runtime below) change when a pin changes.
    ctx.file("lock.sha", str(hash(lock)))
    ctx.file("defs.bzl", "PYTHON = %r\nLOCK_HASH = %r\n" % (python, str(hash(lock))))

dok_venv = repository_rule(
    implementation = _dok_venv_impl,
    attrs = {"lock": attr.label(allow_single_file = True)},
    environ = ["DOK_VENV"],
)
