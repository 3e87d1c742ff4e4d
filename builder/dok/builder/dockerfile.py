"""The Dockerfile of a flow image, rendered by a pure function (no I/O), and the build context layout.

Layer order, most stable first, so that changing only the flow rebuilds only the last few steps:

1. `FROM` the base image; a Python check (minor version = the client's, venv available) that fails early
   with a message saying what differs;
2. optional network settings for pip (CA bundle -> `PIP_CERT`, index URL -> `PIP_INDEX_URL`);
3. a virtualenv at `/opt/dok/venv` (first on `PATH`) with the runtime pins (dask, distributed, cloudpickle,
   kubernetes, tenacity at exactly the client's versions), then the user's `python_dependencies` (pins repeated so
   pip cannot move them);
4. the dok packages the pod needs (`dok.core`, `dok.kube`, `dok.runner`) under `/opt/dok/src` (on the venv's path via
   a `.pth` file) and the build-time health check script;
5. the user's `files`, then `env_vars`;
6. `USER 1000:1000`, `HOME=/tmp`;
7. the flow: `/opt/dok/flow.dokflow`, `/opt/dok/environment.json`, `ENV DOK_BUNDLE_SHA256`;
8. the health check `RUN`: the bundle loads with the expected sha256 (Python, pinned versions and the dok
   imports were checked in step 4, in a cached layer), labels.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Mapping, Sequence

from dok.builder.exceptions import InvalidInputError
from dok.core.names import BUNDLE_PATH, DOK_ROOT, RUNNER_MODULE, is_env_name
from dok.core.podsecurity import RUN_AS_GROUP, RUN_AS_USER

# Paths inside the image (see DEVELOPERS.md "Image layout").
VENV = f"{DOK_ROOT}/venv"
SRC = f"{DOK_ROOT}/src"
ENVIRONMENT_PATH = f"{DOK_ROOT}/environment.json"
HEALTHCHECK_PATH = f"{DOK_ROOT}/healthcheck.py"
CA_BUNDLE_PATH = f"{DOK_ROOT}/ca-bundle.crt"
RUN_AS = f"{RUN_AS_USER}:{RUN_AS_GROUP}"  # the UID the pods run as (dok.core.podsecurity)

# Paths inside the build context.
CTX_CA_BUNDLE = "dok/ca-bundle.crt"
CTX_OPT = "dok/opt"  # mirrors /opt/dok: healthcheck.py, src/dok/<package>/...
CTX_FILES = "files"  # mirrors / for the user's files
CTX_FLOW = "dok/flow"  # flow.dokflow, environment.json

# Labels.
FLOW_LABEL = "dok.dev/flow"
BUNDLE_LABEL = "dok.dev/bundle-sha256"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"

# A failing check prints one line `dok-check: FAILED: <what differs> | <how to fix>` (parsed by the adapter).
CHECK_MARKER = "dok-check: FAILED: "

_RESERVED_ENV = {"DOK_BUNDLE_SHA256", "VIRTUAL_ENV"}


def quote(value: str) -> str:
    """A double-quoted Dockerfile word (ENV/LABEL): escapes backslash, quote and `$` (no expansion)."""
    if "\n" in value or "\r" in value:
        raise InvalidInputError(f"value {value!r} contains a newline", hint="environment variables and labels are one line")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def validate_env_vars(env_vars: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in env_vars.items():
        if not is_env_name(key):
            raise InvalidInputError(
                f"invalid environment variable name {key!r} in env_vars",
                hint="names are letters, digits and '_', not starting with a digit",
            )
        if key in _RESERVED_ENV:
            raise InvalidInputError(f"env_vars may not set {key}", hint="dok sets it in the image")
        value = str(value)
        if "\n" in value or "\r" in value:
            raise InvalidInputError(f"env_vars[{key!r}] contains a newline", hint="use a single-line value (or a file)")
        out[key] = value
    return out


def python_check_code(python_version: str) -> str:
    """Python run by the first RUN step: right minor version, venv/ensurepip available."""
    return (
        "import sys\n"
        "v = '%d.%d' % sys.version_info[:2]\n"
        f"if v != {python_version!r}:\n"
        f"    sys.exit({CHECK_MARKER!r} + 'base image has Python ' + v + ', flows are pickled with "
        f"{python_version}: use a {python_version} base image | e.g. python:{python_version}-slim, "
        f"or make one with tools/images/make_base_image.sh')\n"
        "try:\n"
        "    import venv, ensurepip\n"
        "except ImportError as e:\n"
        f"    sys.exit({CHECK_MARKER!r} + 'base image python3 cannot create virtualenvs (' + str(e) + ') | "
        "install python3-venv in the base image')\n"
    )


def _run_exec(argv: Sequence[str]) -> str:
    return "RUN " + json.dumps(list(argv))


def render_dockerfile(
    *,
    base_image: str,
    python_version: str,
    runtime_pins: Mapping[str, str | None],
    python_dependencies: Sequence[str] = (),
    ca_bundle: bool = False,
    pip_index_url: str | None = None,
    dok_packages: Sequence[str] = ("core", "kube", "runner"),
    has_files: bool = False,
    env_vars: Mapping[str, str] | None = None,
    flow_name: str,
    bundle_sha256: str,
) -> str:
    """The Dockerfile text. `runtime_pins` maps distribution -> exact version (None: unpinned, unchecked);
    `ca_bundle` means the context holds `dok/ca-bundle.crt`; `has_files` that it holds `files/`."""
    if not re.fullmatch(r"\d+\.\d+", python_version):
        raise InvalidInputError(f"invalid python version {python_version!r}", hint="use 'MAJOR.MINOR'")
    for dep in python_dependencies:
        if not isinstance(dep, str) or not dep.strip() or "\n" in dep:
            raise InvalidInputError(f"invalid entry {dep!r} in python_dependencies", hint="use pip requirement strings")
    envs = validate_env_vars(env_vars or {})
    pins = [f"{name}=={version}" if version else name for name, version in runtime_pins.items()]
    pip = f"{VENV}/bin/pip"
    python = f"{VENV}/bin/python"

    lines = [
        "# Rendered by dok.builder: flow image (see DEVELOPERS.md, 'Image layout').",
        f"FROM {base_image}",
        "USER root",
        "# 1. The base image must run the client's Python minor version (cloudpickle needs it).",
        _run_exec(["python3", "-c", python_check_code(python_version)]),
    ]
    lines.append("# 2. Network settings for pip.")
    if ca_bundle:
        lines.append(f"COPY {CTX_CA_BUNDLE} {CA_BUNDLE_PATH}")
        lines.append(f"ENV PIP_CERT={CA_BUNDLE_PATH}")
    if pip_index_url:
        lines.append(f"ENV PIP_INDEX_URL={quote(pip_index_url)}")
    lines += [
        "ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore "
        f"PYTHONUNBUFFERED=1 VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH",
        "# 3. The virtualenv, the runtime pins (the client's exact versions), the flow's dependencies.",
        "RUN python3 -m venv " + VENV + " && echo " + SRC + ' > "$(' + python
        + " -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')/dok.pth\"",
        _run_exec([pip, "install", *pins]),
    ]
    if python_dependencies:
        lines.append(_run_exec([pip, "install", *python_dependencies, *pins]))
    env_check = [python, HEALTHCHECK_PATH, "--python", python_version]
    for name, version in runtime_pins.items():
        if version:
            env_check += ["--require", f"{name}=={version}"]
    for package in dok_packages:
        env_check += ["--module", f"dok.{package}"]
    lines += [
        "# 4. The dok packages the pod runs (" + ", ".join(f"dok.{p}" for p in dok_packages) + ") and the health check;",
        "#    check the environment now (Python, pinned versions, imports) so the flow's check is short.",
        f"COPY {CTX_OPT}/ {DOK_ROOT}/",
        f"RUN {python} -m compileall -q {SRC} && " + " ".join(shlex.quote(a) for a in env_check),
    ]
    if has_files or envs:
        lines.append("# 5. The flow's files and environment variables.")
    if has_files:
        lines.append(f"COPY {CTX_FILES}/ /")
    if envs:
        lines.append("ENV " + " ".join(f"{k}={quote(v)}" for k, v in envs.items()))
    checks = [python, HEALTHCHECK_PATH, "--python", python_version, "--bundle", BUNDLE_PATH, "--sha256", bundle_sha256]
    lines += [
        "# 6. Run as a non-root user; the pod mounts a writable emptyDir at /tmp.",
        f"USER {RUN_AS}",
        "ENV HOME=/tmp",
        'CMD ["python", "-m", "' + RUNNER_MODULE + '", "' + BUNDLE_PATH + '"]',
        "# 7. The flow (changes most often: last).",
        f"COPY {CTX_FLOW}/ {DOK_ROOT}/",
        f"ENV DOK_BUNDLE_SHA256={bundle_sha256}",
        "# 8. Build-time health check: the bundle loads (as the runtime user) with the expected sha256.",
        _run_exec(checks),
        f"LABEL {FLOW_LABEL}={quote(flow_name)} {BUNDLE_LABEL}={bundle_sha256} {MANAGED_BY_LABEL}=dok",
    ]
    return "\n".join(lines) + "\n"
