"""The build context: every byte that goes into the image, assembled in memory, hashed and tarred.

`BuildContext` is a sorted tuple of `ContextFile(path, data, mode)` plus the Dockerfile text. Its
`content_hash(extra)` is the default image tag: it covers the Dockerfile (base image, pins, dependency
list, env vars, pip settings), the user's files, the flow bundle, the dok package sources and the CA bundle,
plus `extra` (e.g. the base image ID and the environment spec). The tar is deterministic (fixed mtime,
uid/gid 0) so docker's layer cache keys on content only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from dok.builder.exceptions import InvalidInputError, MissingFileError

_SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")
HASH_LENGTH = 24  # hex characters of sha256 used as the default tag


@dataclass(frozen=True, kw_only=True)
class ContextFile:
    path: str  # posix, relative to the context root
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True, kw_only=True)
class BuildContext:
    dockerfile: str
    files: tuple[ContextFile, ...]

    @classmethod
    def of(cls, *, dockerfile: str, files: Iterable[ContextFile]) -> BuildContext:
        by_path: dict[str, ContextFile] = {}
        for f in files:
            by_path[f.path] = f
        return cls(dockerfile=dockerfile, files=tuple(by_path[p] for p in sorted(by_path)))

    def content_hash(self, extra: Mapping[str, object] | None = None) -> str:
        return content_hash(dockerfile=self.dockerfile, files=self.files, extra=extra)

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            entries = [ContextFile(path="Dockerfile", data=self.dockerfile.encode())] + list(self.files)
            seen_dirs: set[str] = set()
            for f in entries:
                for parent in reversed(PurePosixPath(f.path).parents[:-1]):
                    if str(parent) not in seen_dirs:
                        seen_dirs.add(str(parent))
                        tar.addfile(_info(str(parent), 0, tarfile.DIRTYPE, 0o755))
                tar.addfile(_info(f.path, len(f.data), tarfile.REGTYPE, f.mode), io.BytesIO(f.data))
        return buffer.getvalue()

    @property
    def size(self) -> int:
        return len(self.dockerfile) + sum(len(f.data) for f in self.files)


def _info(name: str, size: int, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def content_hash(*, dockerfile: str, files: Iterable[ContextFile], extra: Mapping[str, object] | None = None) -> str:
    """sha256 over the Dockerfile, each file's path, mode and bytes, and `extra` (canonical JSON)."""
    h = hashlib.sha256()
    h.update(b"dok-image-v1\0")
    h.update(dockerfile.encode() + b"\0")
    for f in sorted(files, key=lambda f: f.path):
        h.update(f.path.encode() + b"\0" + oct(f.mode).encode() + b"\0")
        h.update(hashlib.sha256(f.data).digest())
    h.update(json.dumps(extra or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:HASH_LENGTH]


def _file_mode(path: Path) -> int:
    return 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644


def tree_files(root: Path, prefix: str, *, python_sources: bool = False) -> list[ContextFile]:
    """Every file under `root` (following symlinks, as in Bazel runfiles) placed under `prefix`;
    `python_sources` skips caches, tests and dotfiles."""
    out: list[ContextFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        if python_sources:
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        dirnames.sort()
        for name in sorted(filenames):
            if python_sources and (name.endswith(_SKIP_SUFFIXES) or name.startswith(".")):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            out.append(ContextFile(path=f"{prefix}/{rel}", data=path.read_bytes(), mode=_file_mode(path)))
    return out


def package_dir(module: str) -> Path | None:
    """Directory of an installed package (e.g. `dok.runner`) without importing it; None when absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if os.path.isdir(location):
            return Path(location)
    return None


def dok_package_files(packages: Iterable[str], prefix: str) -> tuple[list[str], list[ContextFile]]:
    """Sources of `dok.<package>` for each package found; returns (found packages, files under prefix/dok/<p>/)."""
    found: list[str] = []
    files: list[ContextFile] = []
    for package in packages:
        directory = package_dir(f"dok.{package}")
        if directory is None:
            continue
        found.append(package)
        files += tree_files(directory, f"{prefix}/dok/{package}", python_sources=True)
    return found, files


def user_files(files: Mapping[str, str], prefix: str) -> list[ContextFile]:
    """The environment's `files` ({local source path: absolute path in the image}) placed under prefix/<dest>."""
    out: list[ContextFile] = []
    for source, destination in files.items():
        src = Path(os.path.expanduser(str(source)))
        dest = PurePosixPath(str(destination))
        if not dest.is_absolute() or ".." in dest.parts or str(dest) == "/":
            raise InvalidInputError(
                f"files: destination {str(destination)!r} for {str(source)!r} is not an absolute path in the image",
                hint="map each local path to an absolute image path, e.g. {'data.csv': '/opt/flow/data.csv'}",
            )
        if not src.exists():
            raise MissingFileError(
                f"files: {str(source)!r} does not exist (resolved to {src.absolute()})",
                hint="fix the path in files= or create the file before building",
            )
        target = f"{prefix}{dest}"
        if src.is_dir():
            out += tree_files(src, target)
        else:
            out.append(ContextFile(path=target, data=src.read_bytes(), mode=_file_mode(src)))
    return out
