"""Where the local provider keeps things: a build cache outside the repo, state, logs, certificates.

Override the roots with DOK_CLUSTER_CACHE (default /var/cache/dok/kubernetes) and DOK_CLUSTER_STATE
(default /var/lib/dok-cluster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    cache: Path
    state: Path

    @classmethod
    def default(cls) -> Paths:
        return cls(
            cache=Path(os.environ.get("DOK_CLUSTER_CACHE", "/var/cache/dok/kubernetes")),
            state=Path(os.environ.get("DOK_CLUSTER_STATE", "/var/lib/dok-cluster")),
        )

    # build cache
    @property
    def downloads(self) -> Path:
        return self.cache / "downloads"

    # run state
    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def config(self) -> Path:
        return self.state / "config"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def record(self) -> Path:
        """JSON: what `up` changed on the host (saved sysctls, lo address, route guard, bin dir)."""
        return self.state / "state.json"

    @property
    def lock(self) -> Path:
        return self.state / ".lock"
