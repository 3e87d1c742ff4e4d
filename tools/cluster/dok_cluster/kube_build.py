"""Builds the Kubernetes 1.20.2 binaries from Debian's source package into a cache outside the repo.

The cache directory is keyed by the source version and a hash of tools/cluster/patches/*.patch, so the
binaries are rebuilt only when one of those changes. Steps (each resumable after a failure):
download the three source files (pinned by sha256) → `dpkg-source -x` (Debian's own patches) → our patches
→ `make generated_files` → `make WHAT=cmd/<binary>` one binary at a time (progress: which, n of m, elapsed)
→ a static `pause` binary. The source tree and Go build cache (~3.5 GB) are deleted after a successful build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dok_cluster import packages
from dok_cluster.errors import ClusterError
from dok_cluster.paths import Paths
from dok_cluster.progress import Heartbeat, fmt_duration, say

SOURCE_VERSION = "1.20.5+really1.20.2-1.1+deb12u1"
KUBERNETES_VERSION = "v1.20.2"
POOL_URL = "http://deb.debian.org/debian/pool/main/k/kubernetes/"
SOURCE_FILES: dict[str, str] = {
    "kubernetes_1.20.5+really1.20.2-1.1+deb12u1.dsc": "19fa1da5aefcef673894ac9511986bd98a14410cf8eea0b626613c30df435257",
    "kubernetes_1.20.5+really1.20.2.orig.tar.gz": "b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc",
    "kubernetes_1.20.5+really1.20.2-1.1+deb12u1.debian.tar.xz": "9b6e5fd41769d2b5badf2e73b274e3bcd90f85e13d06a1a4a845ccce018127d8",
}
# Smallest first, so progress shows early; kube-apiserver is by far the longest (5-12 min on 2 cores).
BINARIES = ("kube-proxy", "kube-scheduler", "kubectl", "kube-controller-manager", "kubelet", "kube-apiserver")
PATCH_DIR = Path(__file__).resolve().parent.parent / "patches"


@dataclass(frozen=True)
class BuildCache:
    """The cache directory of one (source version, patches) pair."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def log(self) -> Path:
        return self.root / "build.log"

    @property
    def complete_marker(self) -> Path:
        return self.bin / ".complete.json"

    def is_complete(self) -> bool:
        return self.complete_marker.is_file() and all((self.bin / b).is_file() for b in (*BINARIES, "pause"))


def patch_files() -> list[Path]:
    files = sorted(PATCH_DIR.glob("*.patch"))
    if not files:
        raise ClusterError(f"no patches found in {PATCH_DIR}", hint="run from the dok repository (or via Bazel)")
    return files


def cache_key() -> str:
    digest = hashlib.sha256()
    for path in patch_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{SOURCE_VERSION}-{digest.hexdigest()[:12]}"


def cache_for(paths: Paths) -> BuildCache:
    return BuildCache(paths.cache / cache_key())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_sources(paths: Paths) -> None:
    paths.downloads.mkdir(parents=True, exist_ok=True)
    for name, expected in SOURCE_FILES.items():
        target = paths.downloads / name
        if target.is_file() and _sha256(target) == expected:
            continue
        url = POOL_URL + name.replace("+", "%2B")
        say(f"downloading {url}")
        tmp = target.with_suffix(target.suffix + ".part")
        with urllib.request.urlopen(url, timeout=120) as resp, tmp.open("wb") as out:  # noqa: S310 (pinned)
            shutil.copyfileobj(resp, out)
        actual = _sha256(tmp)
        if actual != expected:
            tmp.unlink()
            raise ClusterError(f"sha256 mismatch for {name}: got {actual}, expected {expected}")
        tmp.replace(target)
    say(f"source {SOURCE_VERSION}: sha256 verified")


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}  (in {cwd})\n")
        out.flush()
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise ClusterError(f"`{' '.join(argv)}` failed (exit {proc.returncode}); last lines of {log}:\n{tail}")


def _prepare_tree(paths: Paths, cache: BuildCache, env: dict[str, str]) -> None:
    marker = cache.src / ".dok-prepared"
    if marker.is_file():
        return
    if cache.src.exists():
        shutil.rmtree(cache.src)
    dsc = next(paths.downloads / n for n in SOURCE_FILES if n.endswith(".dsc"))
    with Heartbeat("unpacking the source (dpkg-source -x) and applying tools/cluster/patches", every=30):
        _run(["dpkg-source", "--no-check", "-x", str(dsc), str(cache.src)], cwd=cache.root, env=env, log=cache.log)
        for patch in patch_files():
            _run(["patch", "-p1", "-E", "--no-backup-if-mismatch", "-i", str(patch)], cwd=cache.src, env=env, log=cache.log)
        gopath_link = cache.src / ".go" / "src" / "k8s.io" / "kubernetes"
        gopath_link.parent.mkdir(parents=True, exist_ok=True)
        if not gopath_link.is_symlink():
            gopath_link.symlink_to("../../..")
    marker.write_text("ok\n")


def build_env(cache: BuildCache) -> dict[str, str]:
    home = cache.root / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": "/usr/lib/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "GOPATH": str(cache.src / ".go"),
        "GOCACHE": str(cache.root / "gocache"),
        "GOPROXY": "off",  # everything is vendored; never fetch modules
        "CGO_ENABLED": "0",
        "GOLDFLAGS": "-s -w",
        "LANG": "C.UTF-8",
    }


def ensure_built(paths: Paths) -> BuildCache:
    """Returns the cache with every binary, building what is missing (10-20 min when cold on 2 cores)."""
    cache = cache_for(paths)
    if cache.is_complete():
        return cache
    packages.ensure(packages.BUILD_PACKAGES)
    started = time.monotonic()
    cache.root.mkdir(parents=True, exist_ok=True)
    cache.bin.mkdir(exist_ok=True)
    say(f"building Kubernetes {KUBERNETES_VERSION} from Debian's source into {cache.root} (log: {cache.log})")
    say("a cold build takes about 10-20 minutes on 2 cores; it is cached and resumable")
    download_sources(paths)
    env = build_env(cache)
    _prepare_tree(paths, cache, env)
    timings: dict[str, float] = {}
    generated = cache.src / ".dok-generated"
    steps = len(BINARIES) + 2
    if not generated.is_file():
        with Heartbeat(f"[1/{steps}] make generated_files") as hb:
            _run(["make", "generated_files"], cwd=cache.src, env=env, log=cache.log)
        timings["generated_files"] = hb.elapsed
        generated.write_text("ok\n")
    for index, binary in enumerate(BINARIES, start=2):
        target = cache.bin / binary
        if target.is_file():
            continue
        with Heartbeat(f"[{index}/{steps}] building {binary} (total {fmt_duration(time.monotonic() - started)})") as hb:
            _run(["make", f"WHAT=cmd/{binary}"], cwd=cache.src, env=env, log=cache.log)
            built = cache.src / "_output" / "bin" / binary
            tmp = target.with_suffix(".tmp")
            shutil.copy2(built, tmp)
            tmp.replace(target)
        timings[binary] = hb.elapsed
    pause = cache.bin / "pause"
    if not pause.is_file():
        with Heartbeat(f"[{steps}/{steps}] building the static pause binary") as hb:
            _run(
                ["gcc", "-Os", "-static", "-Wall", "-DVERSION=v3.4.1-dok", "-o", str(pause.with_suffix(".tmp")),
                 "build/pause/linux/pause.c"],
                cwd=cache.src, env=env, log=cache.log,
            )
            pause.with_suffix(".tmp").replace(pause)
        timings["pause"] = hb.elapsed
    total = time.monotonic() - started
    cache.complete_marker.write_text(
        json.dumps({"source": SOURCE_VERSION, "key": cache.root.name, "seconds": round(total, 1),
                    "steps": {k: round(v, 1) for k, v in timings.items()}}, indent=2) + "\n"
    )
    say(f"Kubernetes binaries ready in {cache.bin} (build took {fmt_duration(total)})")
    if os.environ.get("DOK_CLUSTER_KEEP_BUILD_TREE") != "1":
        for tree in (cache.src, cache.root / "gocache", cache.root / "home"):
            shutil.rmtree(tree, ignore_errors=True)
        say("removed the build tree and Go cache (set DOK_CLUSTER_KEEP_BUILD_TREE=1 to keep them)")
    return cache
