"""Which kubeconfig the launcher uses, in order: `--kubeconfig` > `KUBECONFIG` > `~/.kube/config` >
the local cluster's admin kubeconfig (tools/cluster, `$DOK_CLUSTER_STATE/admin.kubeconfig`, default
`/var/lib/dok-cluster/admin.kubeconfig`) when that cluster is up > in-cluster config (inside a pod).
Pure resolution (no API calls) so it is unit-tested; loading happens in `kube.py`.

Safety: once the local cluster is down its node address (10.200.0.1, on `lo` only while it is up) is no
longer on this machine, and without the cluster tool's route guard it would route through the default
gateway. `refuse_if_local_cluster_down` (called by `Kube.connect` right after loading) therefore refuses,
before any connection, a kubeconfig that points at the local cluster (chosen as "local-cluster", or any file
whose server has the host of the local admin kubeconfig's server) when that host is not an address of this
machine (a bind() check: no network traffic).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .exceptions import ClusterUnreachable, ConfigError

UP_HINT = "start the local cluster: tools/bazel run //tools:cluster -- up"
DOWN_HINT = "start it: tools/bazel run //tools:cluster -- up"
Source = Literal["flag", "KUBECONFIG", "home", "local-cluster", "in-cluster"]


@dataclass(frozen=True, kw_only=True)
class KubeconfigChoice:
    """The kubeconfig file to load (None for in-cluster) and where the choice came from."""

    path: Path | None
    source: Source


def local_cluster_kubeconfig(environ: dict[str, str] | None = None) -> Path:
    """The admin kubeconfig that `tools/bazel run //tools:cluster -- up` writes."""
    environ = os.environ if environ is None else environ
    state = environ.get("DOK_CLUSTER_STATE") or "/var/lib/dok-cluster"
    return Path(state) / "admin.kubeconfig"


def resolve_kubeconfig(flag: str | None = None, environ: dict[str, str] | None = None,
                       home: Path | None = None) -> KubeconfigChoice:
    """Pick the kubeconfig; raise ConfigError for a named file that is missing, ClusterUnreachable when
    nothing is configured and the local cluster is not up."""
    environ = os.environ if environ is None else environ
    if flag:
        path = Path(os.path.expanduser(flag))
        base = environ.get("DOK_WORKING_DIRECTORY") or environ.get("BUILD_WORKING_DIRECTORY")
        if not path.is_absolute() and base:
            path = Path(base) / path
        if not path.is_file():
            raise ConfigError(f"kubeconfig {str(path)!r} (from --kubeconfig) does not exist",
                              hint="give an existing file, or omit --kubeconfig")
        return KubeconfigChoice(path=path, source="flag")
    env_value = environ.get("KUBECONFIG", "")
    if env_value:
        paths = [Path(os.path.expanduser(p)) for p in env_value.split(os.pathsep) if p]
        existing = [p for p in paths if p.is_file()]
        if not existing:
            raise ConfigError(f"KUBECONFIG={env_value!r} names no existing file",
                              hint="fix KUBECONFIG or unset it to use ~/.kube/config or the local cluster")
        return KubeconfigChoice(path=existing[0], source="KUBECONFIG")
    home = Path(environ.get("HOME") or os.path.expanduser("~")) if home is None else home
    default = home / ".kube" / "config"
    if default.is_file():
        return KubeconfigChoice(path=default, source="home")
    local = local_cluster_kubeconfig(environ)
    if local.is_file():
        return KubeconfigChoice(path=local, source="local-cluster")
    if environ.get("KUBERNETES_SERVICE_HOST") and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file():
        return KubeconfigChoice(path=None, source="in-cluster")
    raise ClusterUnreachable(
        f"no Kubernetes cluster configured (no --kubeconfig, no KUBECONFIG, no {default}) "
        f"and the local cluster is not up ({local} missing)", hint=UP_HINT)


# ---- the local cluster is down: refuse before connecting ------------------------------------------------
def server_of(doc: Any, context: str | None = None) -> str | None:
    """The server URL of `context` (default: current-context) in a parsed kubeconfig, or None."""
    if not isinstance(doc, dict):
        return None
    name = context or doc.get("current-context")
    ctx = next((c.get("context") or {} for c in doc.get("contexts") or []
                if isinstance(c, dict) and c.get("name") == name), None)
    clusters = [c for c in doc.get("clusters") or [] if isinstance(c, dict)]
    if ctx is not None:
        clusters = [c for c in clusters if c.get("name") == ctx.get("cluster")]
    server = (clusters[0].get("cluster") or {}).get("server") if clusters else None
    return str(server) if server else None


def local_cluster_server(environ: dict[str, str] | None = None) -> str | None:
    """The API server URL in the local cluster's admin kubeconfig (written by the cluster tool as JSON and
    kept across `down`); None when there is none or it cannot be read (e.g. not root)."""
    try:
        doc = json.loads(local_cluster_kubeconfig(environ).read_text())
    except (OSError, ValueError):
        return None
    return server_of(doc)


def address_is_local(host: str) -> bool:
    """True when `host` (an IP address) is assigned to this machine: bind() succeeds. No packet is sent."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
        return True
    except OSError:
        return False


def check_local_cluster(choice: KubeconfigChoice, server: str | None, *, local_server: str | None,
                        is_local: Callable[[str], bool] = address_is_local) -> None:
    """Raise ClusterUnreachable when the kubeconfig's `server` is the local cluster's and that cluster is
    down (its address is not on this machine). Other clusters, and an up local cluster, pass."""
    host = urlsplit(server or "").hostname
    local_host = urlsplit(local_server or "").hostname
    if host is None or not (choice.source == "local-cluster" or host == local_host):
        return
    if is_local(host):
        return
    raise ClusterUnreachable(
        f"the local cluster is down: its API server {server} is not on this machine any more "
        f"(kubeconfig {choice.path}); not connecting (that traffic could leave this machine)",
        hint=DOWN_HINT)


def refuse_if_local_cluster_down(choice: KubeconfigChoice, server: str | None,
                                 environ: dict[str, str] | None = None) -> None:
    """`check_local_cluster` with the local cluster's server read from its state dir."""
    check_local_cluster(choice, server, local_server=local_cluster_server(environ))
