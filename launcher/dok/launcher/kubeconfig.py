"""Which kubeconfig the launcher uses, in order: `--kubeconfig` > `KUBECONFIG` > `~/.kube/config` >
the local cluster's admin kubeconfig (tools/cluster, `$DOK_CLUSTER_STATE/admin.kubeconfig`, default
`/var/lib/dok-cluster/admin.kubeconfig`) when that cluster is up > in-cluster config (inside a pod).
Pure resolution (no API calls) so it is unit-tested; loading happens in `kube.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .exceptions import ClusterUnreachable, ConfigError

UP_HINT = "start the local cluster: tools/bazel run //tools:cluster -- up"
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
