"""Local mode (`dok run FILE --local`): the flow on an in-process `distributed.LocalCluster` that adapts
between the run's `min_workers` and `max_workers`, with live progress (one line per finished task run),
worker scaling lines, and the final State. The same `DaskExecutor` as on Kubernetes, just a local cluster,
sized and paced by the same `RunSpec` settings (workers, threads per worker, Adaptive's interval and target
duration); threads (processes=False) by default: fast start, no pickling.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from dok.core.runspec import RunSpec

from .render import progress_line

if TYPE_CHECKING:
    from dok.core.flow import Flow
    from dok.core.states import State


def default_max_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class _Progress:
    """Prints one line per finished task run (thread-safe: callbacks may come from another thread)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.done = 0
        self.lock = threading.Lock()

    def __call__(self, name: str, state: Any) -> None:
        with self.lock:
            self.done += 1
            print(progress_line(name, state, done=self.done), file=self.out, flush=True)


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


def local_spec(*, min_workers: int | None, max_workers: int | None, env_max_workers: int | None = None) -> RunSpec:
    """The local run's worker range: the given bounds, else at least the environment's max_workers and up to
    the machine's cores (at most 4), starting from one worker."""
    if max_workers is None:
        max_workers = max(env_max_workers or 0, default_max_workers())
        if min_workers is not None:
            max_workers = max(max_workers, min_workers)
    return RunSpec(min_workers=min(1, max_workers) if min_workers is None else min_workers, max_workers=max_workers)


def run_local(flow: Flow, *, parameters: Mapping[str, Any] | None = None, spec: RunSpec | None = None,
              processes: bool = False, out: TextIO | None = None,
              on_task_state: Callable[[str, State], None] | None = None, debug: bool = False) -> State:
    """Run `flow` on an adaptive LocalCluster sized by `spec` and return its State."""
    import dask
    from distributed import Client, LocalCluster

    from dok.core import DaskExecutor
    from dok.core.adaptive import DokAdaptive

    spec = spec or RunSpec(min_workers=1, max_workers=2)
    out = out or sys.stdout
    level = logging.WARNING if debug else logging.CRITICAL  # task errors are reported by dok itself
    # Scale up as soon as ~1 s of work waits (distributed's default, 5 s, is lazy for local runs).
    with dask.config.set({"distributed.adaptive.target-duration": f"{spec.adapt_target_duration}s"}):
        cluster = LocalCluster(n_workers=spec.min_workers, threads_per_worker=spec.worker_nthreads or 1,
                               processes=processes, dashboard_address=":0", silence_logs=level)
        watcher: _ScaleWatcher | None = None
        try:
            cluster.adapt(Adaptive=DokAdaptive, minimum=spec.min_workers, maximum=spec.max_workers,
                          interval=f"{spec.adapt_interval}s", wait_count=3)
            with Client(cluster) as client:
                print(f"[dok] local cluster {cluster.scheduler_address}: {spec.min_workers}.."
                      f"{spec.max_workers} workers ({'processes' if processes else 'threads'})",
                      file=out, flush=True)
                watcher = _ScaleWatcher(cluster, out)
                watcher.start()
                callback = on_task_state or _Progress(out)
                return flow.run(parameters=dict(parameters or {}), executor=DaskExecutor(client),
                                on_task_state=callback)
        finally:
            if watcher is not None:
                watcher.stop_event.set()
            cluster.close(timeout=10)
