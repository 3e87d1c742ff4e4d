"""`dok_workspace()`: what another Bazel workspace needs, after `local_repository(name = "dok", ...)`, to use
`@dok//tools/dok:defs.bzl` (Bazel 4.2.3, WORKSPACE mode, offline; see README "Bazel: the dok_flow macro").

    local_repository(name = "dok", path = "/path/to/dok")
    load("@dok//tools/dok:workspace.bzl", "dok_workspace")
    dok_workspace()

It defines, unless the workspace already has a repository of that name:
  - `rules_cc`, `remote_coverage_tools`: dok's offline stand-ins (third_party/ of the dok checkout);
  - `rules_java`, `bazel_skylib`: Debian's (`bazel-rules-java`, `bazel-skylib`, installed by dok's tools/bazel);
  - `dok_venv`: the Python interpreter, dok's virtualenv ($DOK_VENV, default /var/cache/dok/venv, made by
    `<dok>/tools/bazel` from dok's requirements.lock; pins change -> the repository and every test re-run);
and registers dok's Python toolchain (that interpreter) for the workspace.
"""

load("//tools/python:venv.bzl", "dok_venv")

def _dok_third_party_impl(ctx):
    # dok's checkout, found from a file of its root package (this repository rule runs after @dok is fetched).
    source = ctx.path(Label("//:WORKSPACE")).dirname.get_child("third_party").get_child(ctx.attr.directory)
    if not source.exists:
        fail("dok: %s does not exist" % source)
    for child in source.readdir():
        ctx.symlink(child, child.basename)

_dok_third_party = repository_rule(
    implementation = _dok_third_party_impl,
    doc = "A repository made of one directory of dok's third_party/ (symlinked).",
    attrs = {"directory": attr.string(mandatory = True)},
    local = True,
)

def _missing(name):
    return native.existing_rule(name) == None

def dok_workspace():
    """Repositories and the Python toolchain that dok's Bazel targets (and `dok_flow`) need.

    Takes no arguments: the repository names are fixed, because dok's own BUILD files refer to them
    (`@dok_venv//:defs.bzl`, `@rules_cc`, ...). A repository the workspace already defines is kept.
    """
    if _missing("rules_cc"):
        _dok_third_party(name = "rules_cc", directory = "rules_cc")
    if _missing("remote_coverage_tools"):
        _dok_third_party(name = "remote_coverage_tools", directory = "remote_coverage_tools")
    if _missing("rules_java"):
        native.local_repository(name = "rules_java", path = "/usr/share/bazel/rules/java")
    if _missing("bazel_skylib"):
        native.local_repository(name = "bazel_skylib", path = "/usr/share/bazel/tools/skylib")
    if _missing("dok_venv"):
        dok_venv(name = "dok_venv", lock = Label("//:requirements.lock"))
    native.register_toolchains(str(Label("//tools/python:python_toolchain")))
