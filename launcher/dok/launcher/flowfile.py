"""Finding a user's flow: `FILE[:ATTR]` → the `dok.core.Flow` object (and the environment next to it).

Relative paths resolve against the directory the user ran `dok` from — under `bazel run` that is
`BUILD_WORKING_DIRECTORY` (or `DOK_WORKING_DIRECTORY` from tools/dok), not the runfiles directory. The file is imported as a fresh
module registered with cloudpickle "by value", so its task functions travel to Dask workers and into
flow bundles without the file having to be importable there. Its module name comes from the file's
content (`module_name`), so the same file gives the same bundle bytes — and the same image tag — in
every `dok` process. ATTR defaults to the module's single Flow,
else its attribute `flow`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exceptions import UsageError

_ATTR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True, kw_only=True)
class FlowRef:
    """A parsed `FILE[:ATTR]` argument: the path as typed, the resolved absolute path, the attribute."""

    text: str
    path: Path
    attr: str | None


@dataclass(frozen=True, kw_only=True)
class LoadedFlow:
    """The flow found in a file, the attribute it came from, and the module's environment, if any."""

    ref: FlowRef
    flow: Any
    attr: str
    module: Any
    environment: Any | None


def working_directory(environ: dict[str, str] | None = None) -> Path:
    """The directory the user ran from: `DOK_WORKING_DIRECTORY` (set by tools/dok, whose Bazel wrapper
    changes to the workspace root first), else `BUILD_WORKING_DIRECTORY` under `bazel run`, else the cwd."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("DOK_WORKING_DIRECTORY") or environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd())


def resolve_path(text: str, environ: dict[str, str] | None = None) -> Path:
    """`text` as an absolute path; relative paths are taken from the user's working directory."""
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        path = working_directory(environ) / path
    return path


def parse_ref(text: str, environ: dict[str, str] | None = None) -> FlowRef:
    """Split `FILE[:ATTR]`; the part after the last ':' is an attribute only if it looks like one."""
    if not text:
        raise UsageError("empty flow reference", hint="give FILE[:ATTR], e.g. examples/fanout.py:flow")
    file_part, attr = text, None
    head, sep, tail = text.rpartition(":")
    if sep and head and not tail.startswith(("/", "\\")):
        if not _ATTR_RE.match(tail):
            raise UsageError(f"invalid attribute {tail!r} in {text!r}",
                             hint="ATTR must be a Python name, e.g. examples/fanout.py:flow")
        file_part, attr = head, tail
    return FlowRef(text=text, path=resolve_path(file_part, environ), attr=attr)


def _flow_type():
    from dok.core import Flow

    return Flow


def _environment_type():
    try:
        from dok.core import DaskOnKubernetesEnvironment
    except ImportError:  # pragma: no cover
        return None
    return DaskOnKubernetesEnvironment


def module_name(path: Path, source: bytes) -> str:
    """The module name a flow file is imported as: `dok_userflow_<stem>_<sha256 of its bytes, 12 hex>`.

    Bundles record it (the module of every task function), so it must not vary between processes (no
    `hash()`: string hashes are salted per process) and it does not depend on where the file is: the same
    file content gives the same bundle in any checkout (the bundle also drops the directory from source
    file names, see dok.core.canonical_pickle). The prefix keeps it clear of real modules (a flow file
    called `json.py` must not shadow the stdlib), the stem keeps it readable in errors."""
    stem = re.sub(r"\W", "_", path.stem) or "flow"
    return f"dok_userflow_{stem}_{hashlib.sha256(source).hexdigest()[:12]}"


def import_file(path: Path) -> Any:
    """Import `path` as a new module (its directory on sys.path, like `python FILE` does)."""
    if not path.exists():
        raise UsageError(f"flow file {str(path)!r} does not exist",
                         hint="relative paths are taken from the directory you ran dok from")
    if path.is_dir():
        raise UsageError(f"flow file {str(path)!r} is a directory", hint="give a .py file")
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read flow file {str(path)!r}: {exc.strerror or exc}",
                         hint="check the file's permissions") from exc
    name = module_name(path, source)
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {str(path)!r} as Python", hint="give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise UsageError(f"{path.name}:{exc.lineno}: syntax error: {exc.msg}",
                         hint="fix the flow file") from exc
    except SystemExit as exc:
        sys.modules.pop(name, None)
        raise UsageError(f"loading {path.name} called exit({exc.code})",
                         hint="guard script code with `if __name__ == \"__main__\":`") from exc
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        line = _user_line(exc, path)
        where = f"{path.name}:{line}" if line else path.name
        from dok.core.exceptions import DokError

        hint = "fix the flow definition" if isinstance(exc, DokError) else "run with --debug for the traceback"
        raise UsageError(f"loading {where} failed: {type(exc).__name__}: {exc}", hint=hint) from exc
    try:
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except Exception:  # pragma: no cover - older cloudpickle: functions pickle by reference
        pass
    return module


def _user_line(exc: BaseException, path: Path) -> int | None:
    """The last line of the flow file in the exception's traceback."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _get_attr(module: Any, attr: str) -> Any:
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _find_instances(module: Any, cls: type | None) -> list[tuple[str, Any]]:
    if cls is None:
        return []
    return [(k, v) for k, v in vars(module).items() if not k.startswith("_") and isinstance(v, cls)]


def load_flow(text: str, environ: dict[str, str] | None = None) -> LoadedFlow:
    """Load `FILE[:ATTR]`; raise UsageError naming the problem (missing file/attribute, not a Flow, …)."""
    ref = parse_ref(text, environ)
    module = import_file(ref.path)
    flow_cls = _flow_type()
    flows = _find_instances(module, flow_cls)
    names = ", ".join(k for k, _ in flows) or "none"
    if ref.attr is not None:
        try:
            obj = _get_attr(module, ref.attr)
        except AttributeError:
            raise UsageError(f"{ref.path.name} has no attribute {ref.attr!r}",
                             hint=f"Flows defined there: {names}") from None
        if not isinstance(obj, flow_cls):
            raise UsageError(f"{ref.path.name}:{ref.attr} is a {type(obj).__name__}, not a dok Flow",
                             hint=f"Flows defined there: {names}")
        attr = ref.attr
    elif len(flows) == 1:
        attr, obj = flows[0]
    elif isinstance(getattr(module, "flow", None), flow_cls):
        attr, obj = "flow", module.flow
    elif not flows:
        raise UsageError(f"{ref.path.name} defines no dok Flow",
                         hint="create one with `with Flow(\"name\") as flow:` or give FILE:ATTR")
    else:
        raise UsageError(f"{ref.path.name} defines several Flows ({names})",
                         hint=f"pick one: {ref.text}:{flows[0][0]}")
    environment = getattr(obj, "environment", None)
    env_cls = _environment_type()
    if env_cls is not None and not isinstance(environment, env_cls):
        environment = None
        envs = _find_instances(module, env_cls)
        if isinstance(getattr(module, "environment", None), env_cls):
            environment = module.environment
        elif len(envs) == 1:
            environment = envs[0][1]
    return LoadedFlow(ref=ref, flow=obj, attr=attr, module=module, environment=environment)
