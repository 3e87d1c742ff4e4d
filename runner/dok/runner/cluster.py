"""The Dask cluster of one run: a scheduler in this process, workers from a `WorkerBackend`, scaled by Adaptive.

`DokCluster` is distributed's `SpecCluster` (no autoscaler of our own): its worker spec is a
`BackendWorker` (a `ProcessInterface` whose `start()` asks the backend for a worker — a pod — and whose
`close()` deletes it), `adapt(minimum=, maximum=)` turns on distributed's `Adaptive`. On top it adds:
- worker names from the backend (`dok-<flow>-<id>-worker-<n>`, never reused, so a replacement never collides
  with a pod that is still terminating); with `worker_processes` P > 1 a spec entry is a pod running P Dask
  workers `<pod>/0` … (SpecCluster's worker "groups"): `scale(n)` asks for ceil(n / P) pods, Adaptive's
  policy retires pods whole (dok.core.scaling rule (e)), health and logs stay per pod;
- scaling log lines (`RunMonitor`), and a scheduler plugin that records when workers join and leave;
- the dashboard's pages added to the scheduler's HTTP server a second after it starts (`attach_dashboard`),
  so no run waits ~0.5 s for bokeh to load;
- optionally (`job_worker_threads`), a Dask worker inside this process — the job pod — that runs tasks at
  once, before any worker pod could join: a small flow ends without waiting for a pod. Once a worker pod has
  joined it is paused (no new tasks), and retired when its running tasks are done, its results moving to the
  worker pods (`retire_workers`), so the run goes on on pods only. It is not counted as a worker pod;
- a supervisor coroutine on the scheduler's loop that polls `backend.observe()` and applies
  `HealthPolicy`: a worker whose pod vanished (deleted by someone, exited, crashed after joining) is dropped
  from the spec at once, so Adaptive asks for a replacement on its next tick instead of waiting for
  SpecCluster's lost-worker timeout; a worker that cannot start fails the run through `monitor.fatal`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from distributed import Scheduler
from distributed.core import Status
from distributed.deploy.spec import ProcessInterface, SpecCluster

from dok.core.names import DASHBOARD_PORT, SCHEDULER_PORT
from dok.kube import RetryPolicy
from dok.kube import retry as kube_retry
from dok.runner.health import Fatal, HealthPolicy, Replace
from dok.runner.monitor import JOB_WORKER, JoinTracker, RunMonitor
from dok.runner.worker import group_suffixes, pods_for

if TYPE_CHECKING:
    from dok.runner.backend import WorkerBackend

logger = logging.getLogger(__name__)
DASHBOARD_DELAY = 1.0  # seconds after the scheduler starts before bokeh is loaded (a flow that ends sooner never pays)
LOG_RETRY = RetryPolicy(initial=0.3, maximum=1.0, budget=5.0, jitter=0.0)  # reading a just-ended worker's log


class BackendWorker(ProcessInterface):
    """One Dask worker as seen by SpecCluster: created and deleted through the backend."""

    def __init__(self, scheduler: str, name: str, *, backend: WorkerBackend, monitor: RunMonitor,
                 planned: Any = None) -> None:
        super().__init__(scheduler=scheduler, name=name)
        self.scheduler_address = scheduler
        self.name = name
        self.backend = backend
        self.monitor = monitor
        self.requested_at: float | None = None
        self._planned = planned

    async def start(self) -> None:
        self.requested_at = time.monotonic()
        try:
            await self.backend.create(self.name, self.scheduler_address)
        except Exception as exc:
            self.monitor.fatal(exc)
            self.status = Status.failed
            raise
        self.monitor.worker_requested(self.name, planned=self._planned() if self._planned else None)
        await super().start()

    async def close(self) -> None:
        if self.name in self.monitor.joined:  # it ran: keep its log in the job pod's log before deleting it
            try:
                # A worker that lived a second or two may still read as "waiting to start" (the kubelet
                # reports a started container a little late): ask again for a few seconds.
                text = await kube_retry.acall(lambda: self.backend.worker_log(self.name), policy=LOG_RETRY,
                                              retry_on=lambda exc: "waiting to start" in str(exc))
                if text.strip():
                    self.monitor.worker_log(self.name, text)
            except Exception as exc:  # noqa: BLE001 - best effort: a pod deleted by someone has no log left
                self.monitor.say(f"note: the log of worker {self.name} was not kept ({type(exc).__name__}: {exc})")
        try:
            deleted = await self.backend.delete(self.name)
            self.monitor.worker_removed(self.name, deleted=deleted)
        except Exception as exc:  # noqa: BLE001 - the final cleanup lists and deletes leftovers again
            self.monitor.say(f"warning: could not delete worker {self.name}: {exc}")
        finally:
            await super().close()


def dashboard_address(*, enabled: bool, host: str = "0.0.0.0", port: int = DASHBOARD_PORT) -> str | None:
    """Where the scheduler serves Dask's dashboard: `host:port` (the job container's "dashboard" port, reached
    from outside through `dok dashboard ID`), None when the run turned it off (`RunSpec.dashboard="off"`)."""
    if not enabled:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def scheduler_options(*, host: str, port: int, contact_address: str, dashboard: str | None) -> dict[str, Any]:
    """The in-process Scheduler's options. `dashboard`: the address of its HTTP server, where the dashboard's
    pages are added once the scheduler runs (`attach_dashboard`: importing bokeh takes ~0.5 s, which a run
    should not wait for); None: a free port and no dashboard (the HTTP server still answers /health)."""
    options: dict[str, Any] = {"host": host, "port": port, "contact_address": contact_address, "validate": False,
                               "dashboard": False}
    options["dashboard_address"] = ":0" if dashboard is None else dashboard
    return options


def attach_dashboard(scheduler: Scheduler, loop: Any, *, say: Callable[[str], None]) -> threading.Thread:
    """Add Dask's dashboard (bokeh's /status and the rest) to a running scheduler's HTTP server: bokeh is
    imported in a thread, then the pages are connected on the scheduler's loop. Returns the thread."""

    def load() -> None:
        try:
            import distributed.dashboard.scheduler as pages
        except ImportError as exc:
            say(f"no dashboard: {exc} (the image needs bokeh)")
            return

        def connect() -> None:
            if scheduler.status in (Status.closing, Status.closed) or scheduler.http_server is None:
                return
            pages.connect(scheduler.http_application, scheduler.http_server, scheduler, prefix="/")

        loop.add_callback(connect)

    thread = threading.Timer(DASHBOARD_DELAY, load)
    thread.name = "dok-dashboard"
    thread.daemon = True
    thread.start()
    return thread


class DokCluster(SpecCluster):
    """SpecCluster + Adaptive over a WorkerBackend, with a scheduler listening on `host:port` that advertises
    `contact_address` to workers (the job pod's IP) and serves the dashboard at `dashboard` (None: none)."""

    def __init__(self, *, backend: WorkerBackend, monitor: RunMonitor, policy: HealthPolicy,
                 contact_address: str, host: str = "0.0.0.0", port: int = SCHEDULER_PORT, watch_interval: float = 1.0,
                 worker_nthreads: int = 1, dashboard: str | None = None, asynchronous: bool = False,
                 job_worker_threads: int = 0, worker_processes: int = 1) -> None:
        self.backend = backend
        self.worker_processes = worker_processes  # Dask workers per pod: a spec entry's "group" when > 1
        self.contact_address = contact_address
        self.job_worker_threads = job_worker_threads
        self.job_worker: Any = None  # distributed.Worker in this process while it serves (see the docstring)
        self.dashboard = dashboard
        self._dashboard_loader: threading.Thread | None = None
        self.worker_nthreads = worker_nthreads
        self.monitor = monitor
        self.policy = policy
        self.watch_interval = watch_interval
        self._supervisor: asyncio.Task | None = None
        self._stopping = False
        scheduler = {"cls": Scheduler, "options": scheduler_options(host=host, port=port, dashboard=dashboard,
                                                                    contact_address=contact_address)}
        worker: dict[str, Any] = {"cls": BackendWorker, "options": {"backend": backend, "monitor": monitor,
                                                                    "planned": lambda: len(self.worker_spec)}}
        if worker_processes > 1:  # one spec entry = one pod = Dask workers <pod>/0 … (SpecCluster's groups)
            worker["group"] = group_suffixes(worker_processes)
        super().__init__(scheduler=scheduler, worker=worker, asynchronous=asynchronous, name="dok",
                         shutdown_on_close=True)

    @property
    def dashboard_port(self) -> int | None:
        """The port the scheduler's dashboard listens on (its pages come a moment after the scheduler
        starts), None without one (turned off, or not started)."""
        scheduler = self.scheduler if isinstance(self.scheduler, Scheduler) else None
        if scheduler is None or self.dashboard is None or scheduler.http_server is None:
            return None
        return int(scheduler.http_server.port)

    def adapt(self, Adaptive: Any = None, **kwargs: Any) -> Any:  # noqa: N803 - distributed's name
        """`SpecCluster.adapt` with `DokAdaptive` (dok.core.adaptive; its decisions and reasons go to the scaling log) unless another class is given."""
        from dok.core.adaptive import DokAdaptive

        if Adaptive is None or (isinstance(Adaptive, type) and issubclass(Adaptive, DokAdaptive)):
            kwargs.setdefault("report", lambda decision: self.monitor.say(f"scaling: {decision.reason}"))
        return super().adapt(Adaptive=Adaptive or DokAdaptive, **kwargs)

    async def _start(self) -> None:
        await super()._start()
        if isinstance(self.scheduler, Scheduler):
            self.scheduler.add_plugin(JoinTracker(self.monitor), name=JoinTracker.name)
            if self.job_worker_threads > 0 and self.job_worker is None:
                await self._start_job_worker()
            if self.dashboard is not None and self._dashboard_loader is None:
                self._dashboard_loader = attach_dashboard(self.scheduler, self.loop, say=self.monitor.say)
        if self._supervisor is None:
            self._supervisor = asyncio.ensure_future(self._supervise())

    # -- the job pod's own worker ---------------------------------------------------------------------------
    async def _start_job_worker(self) -> None:
        from distributed import Worker
        from distributed.comm import get_address_host

        host = get_address_host(self.contact_address) or None
        # memory_limit=0: no Dask memory management (the pause it would lift is dok's hand-over signal);
        # the job container's memory limit still bounds it.
        worker = Worker(self.contact_address, nthreads=self.job_worker_threads, name=JOB_WORKER, host=host,
                        memory_limit=0, validate=False)
        self.job_worker = await worker

    async def hand_over_job_worker(self) -> str | None:
        """Once a worker pod has joined: pause the job pod's worker, then retire it when nothing runs on it
        (its results move to the pods). Returns what it did ("paused", "retired"), None when nothing."""
        worker = self.job_worker
        scheduler = self.scheduler if isinstance(self.scheduler, Scheduler) else None
        if worker is None or scheduler is None or not (self.monitor.joined & set(self.worker_spec)):
            return None
        if worker.status == Status.running:
            worker.status = Status.paused
            self.monitor.say("scaling: worker pods joined: the job pod's own worker takes no new tasks")
            return "paused"
        if worker.status != Status.paused or worker.state.executing_count:
            return None
        result = await scheduler.retire_workers(workers=[worker.address], close_workers=True, remove=True,
                                                stimulus_id=f"dok-job-worker-{time.time()}")
        if worker.address not in result:
            return None  # no pod could take its results yet: again at the next check
        self.job_worker = None
        with suppress(Exception):
            await worker.close(reason="dok-job-worker-retired")
        self.monitor.say("scaling: the job pod's own worker retired, its results moved to the worker pods")
        return "retired"

    # -- naming and scaling log ---------------------------------------------------------------------------
    def _new_worker_name(self, worker_number: int) -> str:
        return self.backend.new_name()

    def scale(self, n: int = 0, memory: Any = None, cores: Any = None) -> Any:
        """`n` Dask workers: with several workers per pod, `ceil(n / worker_processes)` pods (SpecCluster's own
        `scale` counts spec entries, i.e. pods, even for groups)."""
        before = len(self.plan)
        pods = pods_for(n, self.worker_processes)
        if n != before and self.status not in (Status.closing, Status.closed):
            in_pods = f" in {pods} pod(s)" if self.worker_processes > 1 else ""
            self.monitor.say(f"scaling: target {n} worker(s){in_pods}, had {before} planned")
        return super().scale(pods, memory=memory, cores=cores)

    # -- health supervision --------------------------------------------------------------------------------
    def expected_workers(self) -> dict[str, float]:
        """Workers the cluster wants alive and has requested → when they were requested (monotonic)."""
        out = {}
        for name, worker in self.workers.items():
            if name in self.worker_spec and worker.status == Status.running:
                requested = getattr(worker, "requested_at", None)
                if requested is not None:
                    out[name] = requested
        return out

    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                await self.hand_over_job_worker()
                await self.check_workers()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - API failures after retries end the run
                self.monitor.fatal(exc)
            await asyncio.sleep(self.watch_interval)

    async def check_workers(self) -> None:
        if self.monitor.fatal_error is not None:
            return  # the run is ending; one clear error is enough
        observations = await self.backend.observe()
        if self._stopping or self.status != Status.running:
            return
        decisions = self.policy.decide(observations, expected=self.expected_workers(),
                                       joined=set(self.monitor.joined), now=time.monotonic())
        for decision in decisions:
            if isinstance(decision, Replace):
                if decision.cause:
                    self.monitor.ended_early_because(decision.name, decision.cause)
                await self._drop(decision.name, decision.why)
            elif isinstance(decision, Fatal):
                error = decision.error
                try:
                    detail = (await self.backend.diagnostics(decision.name, log=decision.wants_log)).strip()
                except Exception:  # noqa: BLE001 - diagnostics are a bonus
                    detail = ""
                if detail:
                    error.detail = detail
                self.monitor.fatal(error)

    async def _drop(self, name: str, why: str) -> None:
        async with self._lock:
            self.worker_spec.pop(name, None)
            worker = self.workers.pop(name, None)
        self.monitor.worker_replaced(name, why)
        if worker is not None:
            await worker.close()

    async def _close(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        await self._stop_worker_processes()
        if self.job_worker is not None:
            with suppress(Exception):
                await self.job_worker.close(reason="dok-run-ended")
            self.job_worker = None
        await super()._close()

    async def _stop_worker_processes(self, timeout: float = 2.0) -> None:
        """At the end of a run, ask every worker to exit before its pod is deleted: a pod whose container has
        ended skips its preStop drain (which would start a Python process per worker only to find nothing
        worth moving), and goes faster."""
        scheduler = self.scheduler if isinstance(self.scheduler, Scheduler) else None
        if scheduler is None or not scheduler.workers:
            return
        for address in list(scheduler.workers):
            with suppress(Exception):
                scheduler.close_worker(address)
        deadline = time.monotonic() + timeout
        while scheduler.workers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
