"""The `kind` provider (users' laptops, hosted CI): create or reuse the kind cluster `dok`, load images.

Chosen automatically when a `kind` binary and a kind node image (kindest/node) are available. It keeps
its kubeconfig in the state directory, so it never touches ~/.kube/config. Every `kind`/`kubectl` command
line is built by a pure function below (`create_command`, …; unit-tested in tests/test_kind.py); the
functions after them only run those commands. Hosted CI uses this provider:
.github/workflows/e2e-kind.yml.
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


# -- command lines (pure) ---------------------------------------------------------------------------------
def create_command(*, cluster: str = CLUSTER, image: str | None = None, wait: str = "180s") -> list[str]:
    """`kind create cluster`, waiting for the control plane; `image`: the kindest/node image (its version is
    the Kubernetes version)."""
    return ["kind", "create", "cluster", "--name", cluster, "--wait", wait, *(["--image", image] if image else [])]


def delete_command(*, cluster: str = CLUSTER) -> list[str]:
    return ["kind", "delete", "cluster", "--name", cluster]


def get_clusters_command() -> list[str]:
    return ["kind", "get", "clusters"]


def kubeconfig_command(*, cluster: str = CLUSTER) -> list[str]:
    """Prints the cluster's kubeconfig (written to the state dir, never merged into ~/.kube/config)."""
    return ["kind", "get", "kubeconfig", "--name", cluster]


def load_image_command(image: str, *, cluster: str = CLUSTER) -> list[str]:
    """Copies a local docker image into every node (pods then use it with imagePullPolicy Never/IfNotPresent)."""
    return ["kind", "load", "docker-image", image, "--name", cluster]


def nodes_ready_command(kubeconfig: Path | str, *, timeout: str = "180s") -> list[str]:
    """`kubectl wait` until every node is Ready (kind's --wait covers the control plane only)."""
    return ["kubectl", "--kubeconfig", str(kubeconfig), "wait", "--for=condition=Ready", "nodes", "--all",
            f"--timeout={timeout}"]


# -- running them ------------------------------------------------------------------------------------------
def available() -> bool:
    return shutil.which("kind") is not None and node_image() is not None


def _run(command: list[str], *, capture: bool = False) -> str:
    if shutil.which(command[0]) is None:
        raise ClusterError(f"no `{command[0]}` binary on PATH", hint="install it, or use --provider local")
    proc = subprocess.run(command, capture_output=capture, text=True, check=False)
    if proc.returncode != 0:
        raise ClusterError(f"`{' '.join(command)}` failed" + (f": {proc.stderr.strip()}" if capture else ""))
    return proc.stdout if capture else ""


def _kubeconfig_path(paths: Paths) -> Path:
    return paths.state / f"kind-{CLUSTER}.kubeconfig"


def exists() -> bool:
    return shutil.which("kind") is not None and CLUSTER in _run(get_clusters_command(), capture=True).split()


def up(paths: Paths) -> bool:
    """Creates (True) or reuses (False) the kind cluster."""
    created = not exists()
    if not created:
        say(f"kind cluster {CLUSTER} exists; reusing it")
    else:
        _run(create_command(image=node_image()))
    paths.state.mkdir(parents=True, exist_ok=True)
    target = _kubeconfig_path(paths)
    target.write_text(_run(kubeconfig_command(), capture=True))
    os.chmod(target, 0o600)
    if shutil.which("kubectl"):
        _run(nodes_ready_command(target))
    say(f"kind cluster {CLUSTER} up; kubeconfig: {target}")
    return created


def down(paths: Paths) -> None:
    if exists():
        _run(delete_command())
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
    _run(load_image_command(image))
