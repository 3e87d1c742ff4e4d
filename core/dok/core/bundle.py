"""Flow bundles: a flow pickled with cloudpickle plus what is needed to trust and load it elsewhere.

A bundle file is three parts:

    b"DOKFLOW\\n"
    {"cloudpickle":"3.1.3","dask":"2026.8.0","distributed":"2026.8.0","flow":"fanout","format":1,
     "python":"3.11","sha256":"<hex of the payload>","size":<payload bytes>}\\n      (canonical JSON)
    <payload: cloudpickle.dumps(flow)>

`load` refuses a bundle when anything does not match, and says what: a damaged or truncated payload
(sha256 or size), a header that is not byte-for-byte canonical, an `expected_sha256` given by the caller
(the image's `DOK_BUNDLE_SHA256`), or Python (major.minor) / dask / distributed / cloudpickle versions
different from this interpreter's — with the command that fixes it.

Pickling by value: the image that loads a bundle has dok, its dependencies and the environment's
`python_dependencies`, but not the user's own files (a flow file loaded by path, helper modules next to
it). So every imported module that is not installed (not in the standard library or site-packages and
not part of dok) is registered with `cloudpickle.register_pickle_by_value` while the flow is pickled:
its functions travel inside the bundle instead of as an import that would fail in the image.

Reproducible: the payload is written by `dok.core.canonical_pickle`, so the same flow gives the same bytes
in every process (whatever PYTHONHASHSEED, wherever the files are checked out) — the builder's
content-hash image tag changes only when the flow does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import site
import sys
import sysconfig
from dataclasses import asdict, dataclass
from importlib import metadata
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

import cloudpickle

from . import canonical_pickle
from .exceptions import BundleError
from .flow import Flow
from .runtime import TaskSpec

__all__ = ["BundleInfo", "dump", "dumps", "load", "loads", "read_info", "current_versions", "MAGIC"]

MAGIC = b"DOKFLOW\n"
FORMAT = 1
_HEADER_LIMIT = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class BundleInfo:
    """What a bundle records: the payload's sha256 and the versions it was written with."""

    sha256: str
    python: str
    dask: str
    distributed: str
    cloudpickle: str
    flow_name: str = ""
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_versions() -> dict[str, str]:
    """This interpreter's Python (major.minor), dask, distributed and cloudpickle versions.

    Read from the installed distributions' metadata (as the builder's pins and the image's health check
    do), not by importing dask and distributed: that import is most of a skipped `dok build`'s second."""
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "dask": _version("dask"),
        "distributed": _version("distributed"),
        "cloudpickle": _version("cloudpickle"),
    }


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:  # importable without metadata (sources on sys.path)
        return str(importlib.import_module(distribution).__version__)


# -- which modules travel by value ------------------------------------------------------------------
def _installed_roots() -> list[str]:
    roots = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    with contextlib.suppress(Exception):
        roots.update(site.getsitepackages())
    with contextlib.suppress(Exception):
        roots.add(site.getusersitepackages())
    return [os.path.realpath(r) for r in roots if r]


def _is_local(module: ModuleType, roots: list[str]) -> bool:
    name = getattr(module, "__name__", "")
    if not name or name in ("__main__", "__mp_main__") or name == "dok" or name.startswith("dok."):
        return False
    path = getattr(module, "__file__", None)
    if not path:
        return False  # builtin, frozen, or a namespace package
    real = os.path.realpath(path)
    return not any(real == r or real.startswith(r + os.sep) for r in roots)


def local_modules() -> list[ModuleType]:
    """Imported modules that an image with only installed packages would not have."""
    roots = _installed_roots()
    return [m for m in list(sys.modules.values()) if isinstance(m, ModuleType) and _is_local(m, roots)]


@contextlib.contextmanager
def _by_value(modules: Iterable[ModuleType]) -> Iterator[None]:
    registered = []
    try:
        for m in modules:
            if m.__name__ in sys.modules and not _registered(m):
                cloudpickle.register_pickle_by_value(m)
                registered.append(m)
        yield
    finally:
        for m in registered:
            with contextlib.suppress(Exception):
                cloudpickle.unregister_pickle_by_value(m)


def _registered(module: ModuleType) -> bool:
    try:
        return cloudpickle.cloudpickle._is_registered_pickle_by_value(module)
    except Exception:
        return False


def _reduce_task_spec(spec: TaskSpec, stable_filename: Callable[[str], str]) -> Any:
    """A TaskSpec remembers its function's source file (to restore it in tracebacks): in a bundle that is
    the stable name, like the function's own code (an absolute path from the build machine means nothing
    in the image, and would make the bundle depend on the checkout's location)."""
    if not spec.filename or stable_filename(spec.filename) == spec.filename:
        return NotImplemented
    copy = TaskSpec(fn=spec.fn, name=spec.name, max_retries=spec.max_retries, retry_delay=spec.retry_delay,
                    timeout=spec.timeout)
    copy.filename = stable_filename(spec.filename)
    return copy.__reduce_ex__(canonical_pickle.PROTOCOL)


# -- writing ----------------------------------------------------------------------------------------
def _header_bytes(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def dumps(flow: Flow, *, by_value: Iterable[str | ModuleType] = ()) -> tuple[bytes, BundleInfo]:
    """Bundle `flow` into bytes. `by_value` names extra modules to pickle by value (rarely needed)."""
    if not isinstance(flow, Flow):
        raise BundleError(f"bundle.dumps() takes a dok Flow, got {type(flow).__name__}")
    flow.validate()
    modules = local_modules()
    for m in by_value:
        modules.append(sys.modules[m] if isinstance(m, str) else m)
    try:
        with _by_value(modules):
            payload = canonical_pickle.dumps(flow, reducers={TaskSpec: _reduce_task_spec})
    except Exception as exc:
        raise BundleError(
            f"cannot pickle flow {flow.name!r}: {type(exc).__name__}: {exc}. Tasks and their arguments must "
            f"be picklable by cloudpickle (no open files, locks, sockets or clients captured in closures)"
        ) from exc
    versions = current_versions()
    info = BundleInfo(sha256=hashlib.sha256(payload).hexdigest(), flow_name=flow.name, size=len(payload),
                      **versions)
    header = {"format": FORMAT, "flow": flow.name, "sha256": info.sha256, "size": len(payload), **versions}
    return MAGIC + _header_bytes(header) + payload, info


def dump(flow: Flow, path: str | os.PathLike[str], **kwargs: Any) -> BundleInfo:
    """Write a bundle of `flow` to `path` (atomically: a temporary file renamed into place)."""
    data, info = dumps(flow, **kwargs)
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise BundleError(f"cannot write the flow bundle to {path}: {exc.strerror or exc}") from exc
    return info


# -- reading ----------------------------------------------------------------------------------------
def _parse(data: bytes, where: str) -> tuple[BundleInfo, bytes]:
    if not data.startswith(MAGIC):
        raise BundleError(f"{where} is not a dok flow bundle (it does not start with {MAGIC!r}); write one "
                          f"with dok.core.bundle.dump(flow, path)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + _HEADER_LIMIT)
    if end < 0:
        raise BundleError(f"{where}: the bundle header is damaged or truncated (no end of header line)")
    raw = data[len(MAGIC): end + 1]
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise BundleError(f"{where}: the bundle header is damaged (not JSON: {exc})") from None
    fields = ("format", "flow", "sha256", "size", "python", "dask", "distributed", "cloudpickle")
    if not isinstance(header, dict) or set(header) != set(fields):
        keys = sorted(header) if isinstance(header, dict) else type(header).__name__
        raise BundleError(f"{where}: the bundle header is damaged (fields {keys}, expected {sorted(fields)})")
    if header["format"] != FORMAT:
        raise BundleError(f"{where}: bundle format {header['format']!r}, this dok reads format {FORMAT}; "
                          f"rebuild the bundle with this dok version")
    if _header_bytes(header) != raw:
        raise BundleError(f"{where}: the bundle header is damaged (not in canonical form)")
    payload = data[end + 1:]
    if not isinstance(header["size"], int) or len(payload) != header["size"]:
        raise BundleError(f"{where}: the bundle payload is {len(payload)} bytes, the header says "
                          f"{header['size']}: the file is truncated or damaged; copy or build it again")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != header["sha256"]:
        raise BundleError(f"{where}: the bundle payload's sha256 is {digest}, the header says "
                          f"{header['sha256']}: the file is damaged; copy or build it again")
    info = BundleInfo(sha256=digest, python=str(header["python"]), dask=str(header["dask"]),
                      distributed=str(header["distributed"]), cloudpickle=str(header["cloudpickle"]),
                      flow_name=str(header["flow"]), size=len(payload))
    return info, payload


def version_mismatches(info: BundleInfo) -> list[str]:
    """One sentence per version that differs between the bundle and this interpreter."""
    here = current_versions()
    out = []
    if info.python != here["python"]:
        out.append(f"bundle was written with Python {info.python}, this interpreter is Python "
                   f"{here['python']}: run it with Python {info.python} (e.g. base_image='python:"
                   f"{info.python}-slim') or rebuild the bundle with Python {here['python']}")
    for pkg in ("dask", "distributed", "cloudpickle"):
        theirs, ours = getattr(info, pkg), here[pkg]
        if theirs != ours:
            out.append(f"bundle was written with {pkg} {theirs}, this interpreter has {ours}: "
                       f"install {pkg}=={theirs}")
    return out


def read_info(path: str | os.PathLike[str], expected_sha256: str | None = None) -> BundleInfo:
    """The BundleInfo of a bundle file after checking its integrity (without unpickling it)."""
    return _check(_read(path), os.fspath(path), expected_sha256, check_versions=False)[0]


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BundleError(f"cannot read the flow bundle {os.fspath(path)}: {exc.strerror or exc}") from exc


def _check(data: bytes, where: str, expected_sha256: str | None, *, check_versions: bool) -> tuple[BundleInfo, bytes]:
    info, payload = _parse(data, where)
    if expected_sha256 is not None and info.sha256 != expected_sha256.strip().lower():
        raise BundleError(f"{where}: the bundle's sha256 is {info.sha256}, expected {expected_sha256} "
                          f"(DOK_BUNDLE_SHA256 / the image label): this is not the bundle that was built")
    if check_versions:
        problems = version_mismatches(info)
        if problems:
            raise BundleError(f"{where}: " + "; ".join(problems))
    return info, payload


def loads(data: bytes, *, expected_sha256: str | None = None, check_versions: bool = True,
          where: str = "<bytes>") -> Flow:
    """The Flow in bundle bytes, after every check in the module docstring."""
    info, payload = _check(bytes(data), where, expected_sha256, check_versions=check_versions)
    try:
        flow = cloudpickle.loads(payload)
    except Exception as exc:
        raise BundleError(f"{where}: cannot unpickle flow {info.flow_name!r}: {type(exc).__name__}: {exc}. "
                          f"A module the flow imports is probably missing here: add it to "
                          f"python_dependencies") from exc
    if not isinstance(flow, Flow) or flow.name != info.flow_name:
        got = f"flow {flow.name!r}" if isinstance(flow, Flow) else type(flow).__name__
        raise BundleError(f"{where}: the bundle holds {got}, its header says flow {info.flow_name!r}")
    return flow


def load(path: str | os.PathLike[str], expected_sha256: str | None = None, *, check_versions: bool = True) -> Flow:
    """Load the Flow from a bundle file; BundleError says what does not match."""
    return loads(_read(path), expected_sha256=expected_sha256, check_versions=check_versions,
                 where=os.fspath(path))
