"""Local mode (`dok run FILE --local`): the flow on an in-process `distributed.LocalCluster` that adapts
between `min_workers` and `max_workers`, with live progress (one line per finished task run), worker
scaling lines, and the final State. The same `DaskExecutor` as on Kubernetes, just a local cluster.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from .exceptions import UsageError
from .progress import GroupedProgress


@dataclass(frozen=True, kw_only=True)
class LocalOptions:
    """How to size the local cluster. Threads (processes=False) by default: fast start, no pickling."""

    min_workers: int = 1
    max_workers: int = 2
    threads_per_worker: int = 1
    processes: bool = False
    adapt_interval: str = "500ms"
    target_duration: str = "1s"

    def __post_init__(self) -> None:
        if not isinstance(self.max_workers, int) or self.max_workers < 1:
            raise UsageError(f"--max-workers must be >= 1, got {self.max_workers!r}", hint="e.g. --max-workers 4")
        if not isinstance(self.min_workers, int) or self.min_workers < 0:
            raise UsageError(f"--min-workers must be >= 0, got {self.min_workers!r}", hint="e.g. --min-workers 1")
        if self.min_workers > self.max_workers:
            raise UsageError(f"--min-workers ({self.min_workers}) exceeds --max-workers ({self.max_workers})",
                             hint="raise --max-workers or lower --min-workers")


def default_max_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class _ScaleWatcher(threading.Thread):
    """Prints `[dok] workers: N` whenever the local cluster's worker count changes."""

    def __init__(self, cluster: Any, out: TextIO, interval: float = 0.25) -> None:
        super().__init__(name="dok-scale-watch", daemon=True)
        self.cluster, self.out, self.interval = cluster, out, interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        last = None
        while not self.stop_event.wait(self.interval):
            try:
                n = len(self.cluster.scheduler_info.get("workers", {}))
            except Exception:  # noqa: BLE001 - the cluster is closing
                return
            if n != last:
                print(f"[dok] workers: {n}", file=self.out, flush=True)
                last = n


def run_local(flow: Any, *, parameters: Mapping[str, Any] | None = None, options: LocalOptions | None = None,
              out: TextIO | None = None, on_task_state: Callable[[str, Any], None] | None = None,
              debug: bool = False) -> Any:
    """Run `flow` on an adaptive LocalCluster and return its State."""
    import dask
    from distributed import Client, LocalCluster

    from dok.core import DaskExecutor
    from dok.core.adaptive import DokAdaptive

    options = options or LocalOptions()
    out = out or sys.stdout
    level = logging.WARNING if debug else logging.CRITICAL  # task errors are reported by dok itself
    # Scale up as soon as ~1 s of work waits (distributed's default, 5 s, is lazy for local runs).
    with dask.config.set({"distributed.adaptive.target-duration": options.target_duration}):
        cluster = LocalCluster(n_workers=options.min_workers, threads_per_worker=options.threads_per_worker,
                               processes=options.processes, dashboard_address=":0", silence_logs=level)
        watcher: _ScaleWatcher | None = None
        try:
            cluster.adapt(Adaptive=DokAdaptive, minimum=options.min_workers, maximum=options.max_workers,
                          interval=options.adapt_interval, wait_count=3)
            with Client(cluster) as client:
                print(f"[dok] local cluster {cluster.scheduler_address}: {options.min_workers}.."
                      f"{options.max_workers} workers ({'processes' if options.processes else 'threads'})",
                      file=out, flush=True)
                watcher = _ScaleWatcher(cluster, out)
                watcher.start()
                progress = GroupedProgress(out) if on_task_state is None else None
                try:
                    return flow.run(parameters=dict(parameters or {}), executor=DaskExecutor(client),
                                    on_task_state=on_task_state or progress)
                finally:
                    if progress is not None:
                        progress.flush()
        finally:
            if watcher is not None:
                watcher.stop_event.set()
            cluster.close(timeout=10)
