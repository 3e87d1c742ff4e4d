"""The `kind` provider (users' laptops, hosted CI): create or reuse the kind cluster `dok`, load images.

Chosen automatically when a `kind` binary and a kind node image (kindest/node) are available. It keeps
its kubeconfig in the state directory, so it never touches ~/.kube/config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from dok_cluster.errors import ClusterError
from dok_cluster.paths import Paths
from dok_cluster.progress import say

CLUSTER = os.environ.get("DOK_KIND_CLUSTER", "dok")


def node_image() -> str | None:
    """DOK_KIND_NODE_IMAGE, else a kindest/node image already in dockerd (no pulls needed)."""
    if os.environ.get("DOK_KIND_NODE_IMAGE"):
        return os.environ["DOK_KIND_NODE_IMAGE"]
    proc = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "kindest/node"],
                          capture_output=True, text=True, check=False)
    images = [line for line in proc.stdout.split() if not line.endswith(":<none>")]
    return images[0] if images else None


def available() -> bool:
    return shutil.which("kind") is not None and node_image() is not None


def _kind(*args: str, capture: bool = False) -> str:
    if shutil.which("kind") is None:
        raise ClusterError("no `kind` binary on PATH", hint="install kind, or use --provider local")
    proc = subprocess.run(["kind", *args], capture_output=capture, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"`kind {' '.join(args)}` failed" + (f": {proc.stderr.strip()}" if capture else ""))
    return proc.stdout if capture else ""


def _kubeconfig_path(paths: Paths) -> Path:
    return paths.state / f"kind-{CLUSTER}.kubeconfig"


def exists() -> bool:
    return shutil.which("kind") is not None and CLUSTER in _kind("get", "clusters", capture=True).split()


def up(paths: Paths) -> bool:
    """Creates (True) or reuses (False) the kind cluster."""
    created = not exists()
    if not created:
        say(f"kind cluster {CLUSTER} exists; reusing it")
    else:
        image = node_image()
        _kind("create", "cluster", "--name", CLUSTER, "--wait", "180s", *(["--image", image] if image else []))
    paths.state.mkdir(parents=True, exist_ok=True)
    target = _kubeconfig_path(paths)
    target.write_text(_kind("get", "kubeconfig", "--name", CLUSTER, capture=True))
    os.chmod(target, 0o600)
    say(f"kind cluster {CLUSTER} up; kubeconfig: {target}")
    return created


def down(paths: Paths) -> None:
    if exists():
        _kind("delete", "cluster", "--name", CLUSTER)
    _kubeconfig_path(paths).unlink(missing_ok=True)
    say(f"kind cluster {CLUSTER} deleted")


def status(paths: Paths) -> bool:
    up_now = exists()
    print(f"kind cluster {CLUSTER}: {'exists' if up_now else 'absent'}")
    print(f"kubeconfig: {_kubeconfig_path(paths) if up_now else '(none)'}")
    return up_now


def kubeconfig(paths: Paths) -> Path:
    target = _kubeconfig_path(paths)
    if not target.is_file():
        raise ClusterError(f"no kubeconfig for kind cluster {CLUSTER}", hint="run `up --provider kind` first")
    return target


def load_image(paths: Paths, image: str) -> None:
    _kind("load", "docker-image", image, "--name", CLUSTER)
