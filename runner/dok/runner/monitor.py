"""The run's shared notebook: scaling log lines on stdout, worker join/leave times, the first fatal error.

The runner's stdout is the job pod's log that `dok run` streams, so every scaling decision is printed here
with the seconds since the runner started: workers requested, joined (with the time from request to join),
removed, replaced; plus per-task progress. `RunMonitor` is written from the scheduler's event loop (the
cluster, the health supervisor, the `JoinTracker` scheduler plugin) and read from the main thread, which
waits on `fatal_event` to stop a run whose workers cannot start.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import Any, TextIO

from distributed.diagnostics.plugin import SchedulerPlugin

from dok.core.names import WORKER_LOG_MARK
from dok.runner.worker import pod_of


JOB_WORKER = "job-pod-worker"  # the Dask name of the optional worker inside the job pod (not a pod: not counted)

_ADDRESS = re.compile(r"(?:tcp|tls|ws|wss)://[0-9A-Za-z.\-\[\]:]+:[0-9]+")


class RunMonitor:
    def __init__(self, *, stream: TextIO | None = None, clock=time.monotonic, worker_processes: int = 1) -> None:
        self._stream = stream
        self.worker_processes = worker_processes  # Dask workers per worker pod (RunSpec.worker_processes)
        self._clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self.fatal_event = threading.Event()
        self.fatal_error: BaseException | None = None
        self.requested_at: dict[str, float] = {}
        self.joined_at: dict[str, float] = {}
        self.joined: set[str] = set()
        self.alive: set[str] = set()
        self.max_alive = 0
        self.counts = {"requested": 0, "joined": 0, "removed": 0, "replaced": 0}
        self.addresses: dict[str, str] = {}  # worker address -> worker (pod) name
        self.ended_why: dict[str, str] = {}  # worker name -> why its pod ended (when the health watch saw it)
        self.ended_cause: dict[str, str] = {}  # worker name -> its pod's cause by name (dok.kube.causes)
        self.gone: set[str] = set()  # workers removed or replaced (for the starting count)

    def elapsed(self) -> float:
        return self._clock() - self.started

    def say(self, message: str) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(f"[dok {self.elapsed():7.1f}s] {message}\n")
            stream.flush()

    # -- scaling events -----------------------------------------------------------------------------------
    def worker_requested(self, name: str, *, planned: int | None = None) -> None:
        with self._lock:
            self.requested_at[name] = self._clock()
            self.counts["requested"] += 1
        self.say(f"scaling: requested worker {name}" + (f" ({planned} planned)" if planned is not None else ""))

    def worker_joined(self, name: str, *, address: str | None = None) -> None:
        """A Dask worker joined: `joined`, `joined_at` and the counts are per pod (a pod running several workers,
        `<pod>/<i>`, joins with its first), `alive` per Dask worker."""
        if name == JOB_WORKER:
            self.say("scaling: the job pod's own worker joined: it runs tasks until worker pods join")
            return
        pod = pod_of(name)
        with self._lock:
            if address:
                self.addresses[address] = pod
            now = self._clock()
            if pod not in self.joined:
                self.joined.add(pod)
                self.joined_at[pod] = now
                self.counts["joined"] += 1
            self.alive.add(name)
            self.max_alive = max(self.max_alive, len(self.alive))
            since = now - self.requested_at[pod] if pod in self.requested_at else None
            alive = len(self.alive)
        self.say(f"scaling: worker {name} joined" + (f" {since:.1f}s after request" if since is not None else "")
                 + f"; {alive} worker(s) connected")

    def worker_left(self, name: str) -> None:
        if name == JOB_WORKER:
            self.say("scaling: the job pod's own worker left")
            return
        with self._lock:
            self.alive.discard(name)
            alive = len(self.alive)
        self.say(f"scaling: worker {name} left; {alive} worker(s) connected")

    def worker_removed(self, name: str, *, deleted: bool) -> None:
        with self._lock:
            self.counts["removed"] += 1
            self.gone.add(name)
        self.say(f"scaling: removed worker {name}" + ("" if deleted else " (pod was already gone)"))

    def worker_log(self, name: str, text: str) -> None:
        """Copy a worker's log into this (the job pod's) log, each line marked `[worker NAME] `, so `dok logs
        --workers` shows it after the worker pod is gone."""
        stream = self._stream or sys.stdout
        lines = "".join(f"{WORKER_LOG_MARK}{name}] {line}\n" for line in text.splitlines())
        with self._lock:
            stream.write(lines)
            stream.flush()

    def worker_replaced(self, name: str, why: str) -> None:
        with self._lock:
            self.counts["replaced"] += 1
            self.gone.add(name)
            self.ended_why[name] = why
        self.say(f"workers: {name} will be replaced if still needed: {why}")

    def worker_counts(self) -> tuple[int, int]:
        """Dask workers (running: connected to the scheduler, starting: in pods requested, not joined yet and
        not gone)."""
        with self._lock:
            starting = len(set(self.requested_at) - self.joined - self.gone) * self.worker_processes
            return len(self.alive), starting

    def write_line(self, line: str) -> None:
        """One raw line in the job pod's log (a progress record)."""
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def ended_early_because(self, name: str, cause: str) -> None:
        """Record why a worker pod ended before the run did (`dok.kube.causes.end_cause`), for the final State."""
        with self._lock:
            self.ended_cause.setdefault(name, cause)

    def ended_early(self) -> dict[str, str]:
        """Worker pod name -> why it ended early, in the order they ended."""
        with self._lock:
            return dict(self.ended_cause)

    def explain(self, error: BaseException) -> str | None:
        """Names the worker pods (and why they ended, when known) behind the worker addresses an error
        mentions, e.g. a KilledWorker's "the last worker … was tcp://10.244.0.7:40123"; None if none."""
        with self._lock:
            addresses, ended = dict(self.addresses), dict(self.ended_why)
        found: list[str] = []
        for address in dict.fromkeys(_ADDRESS.findall(str(error))):
            name = addresses.get(address)
            if name is not None:
                found.append(f"{address} is worker pod {name}" + (f", which ended: {ended[name]}" if name in ended
                                                                    else ""))
        return "; ".join(found) or None

    # -- failure ------------------------------------------------------------------------------------------
    def fatal(self, error: BaseException) -> None:
        """Record the first fatal error and wake the main thread (later ones are only printed)."""
        with self._lock:
            first = self.fatal_error is None
            if first:
                self.fatal_error = error
            worker, reason = getattr(error, "worker", None), getattr(error, "reason", None)
            if worker and reason and worker not in self.ended_cause:
                self.ended_cause[str(worker)] = str(reason)
        self.say(("FATAL: " if first else "also: ") + str(error))
        self.fatal_event.set()

    def summary(self) -> str:
        """Counts of worker pods, and the most Dask workers connected at once."""
        c = self.counts
        what = "workers" if self.worker_processes <= 1 else f"worker pods ({self.worker_processes} workers each)"
        return (f"{what}: {c['requested']} requested, {c['joined']} joined, {c['removed']} removed, "
                f"{c['replaced']} replaced; at most {self.max_alive} worker(s) at once")


class JoinTracker(SchedulerPlugin):
    """Scheduler plugin: tells the monitor when a worker (by its name) joins or leaves the scheduler."""

    name = "dok-join-tracker"

    def __init__(self, monitor: RunMonitor) -> None:
        self.monitor = monitor
        self._names: dict[str, str] = {}  # address -> name (the scheduler forgets it before remove_worker)

    def add_worker(self, scheduler: Any = None, worker: str | None = None) -> None:
        ws = scheduler.workers.get(worker) if scheduler is not None else None
        name = str(ws.name if ws is not None else worker)
        self._names[str(worker)] = name
        self.monitor.worker_joined(name, address=str(worker))

    def remove_worker(self, scheduler: Any = None, worker: str | None = None, **kwargs: Any) -> None:
        self.monitor.worker_left(self._names.pop(str(worker), str(worker)))
