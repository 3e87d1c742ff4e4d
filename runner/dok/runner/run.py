"""One run inside the job pod: load the bundle, start the cluster, run the flow, report, clean up, exit.

`execute(env, path)` is the whole lifecycle and returns a `RunOutcome` (the flow's State and the pod's exit
code); `run(env, path)` is the library entry point behind `DaskOnKubernetesEnvironment.run(path)` and
returns the State. Order of events:

1. settings resolved once (`RunnerConfig.resolve`), the bundle loaded only if its sha256 matches
   DOK_BUNDLE_SHA256, parameters checked against the flow — before any worker exists;
2. the job pod's spec read once (`PodWorkerBackend.prepare`), a scheduler started in this process,
   `adapt(minimum=min_workers, maximum=max_workers)`;
3. the flow runs on a thread with core's `DaskExecutor`; task progress goes to stdout (the job pod log):
   sampled per-task lines and, every ~2 s, a `[dok-progress]` JSON record per run (`dok.core.progress`);
   the main thread waits for: the flow's State, a fatal worker/API error (`RunMonitor.fatal`), or
   SIGTERM/SIGINT;
4. always: client and cluster closed, leftover worker pods of this run listed by label and deleted (404 is
   success), `encode_summary(state)` written to the termination log (DOK_TERMINATION_LOG,
   /dev/termination-log by default);
5. the full results handed over (`dok.runner.results`): written to the result location, or served to an
   attached client for at most the pick-up timeout.

Exit codes: 0 Success; 1 the flow failed or was cancelled; 3 infrastructure failure (configuration,
bundle, Kubernetes API, workers that cannot start).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dok.core.exceptions import EXIT_FLOW_FAILED, EXIT_INFRA, EXIT_SUCCESS
from dok.core.names import BUNDLE_PATH, RUN_FINISHED_MARK
from dok.core.progress import ProgressCounter, kind_name
from dok.runner.config import DEFAULT_TERMINATION_LOG, TERMINATION_LOG_ENV, RunnerConfig
from dok.runner.exceptions import ConfigError, RunnerError, UnsatisfiableResources
from dok.runner.monitor import RunMonitor
from dok.runner.worker import pods_for

if TYPE_CHECKING:
    from dok.core.environment import DaskOnKubernetesEnvironment

DEFAULT_BUNDLE_PATH = BUNDLE_PATH
CLOSE_TIMEOUT = 30.0


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    state: Any          # dok.core State of the flow run
    exit_code: int
    identifier: str | None = None


def run(env: DaskOnKubernetesEnvironment | None = None, path: str = DEFAULT_BUNDLE_PATH, **overrides: Any) -> Any:
    """Run the flow bundled at `path` on a Dask cluster of worker pods and return its State."""
    return execute(env, path, **overrides).state


def execute(env: DaskOnKubernetesEnvironment | None = None, path: str = DEFAULT_BUNDLE_PATH, *, environ: Mapping[str, str] | None = None,
            backend_factory: Callable[[RunnerConfig], Any] | None = None, install_signal_handlers: bool = True,
            monitor: RunMonitor | None = None, pickup: Any = None, **overrides: Any) -> RunOutcome:
    """The whole run (see the module docstring). `backend_factory(config)` replaces the pod backend (tests);
    `pickup`: a result pick-up server started before this was called (`__main__`); `overrides` are
    RunnerConfig fields that win over the environment."""
    environ = os.environ if environ is None else environ
    monitor = monitor or RunMonitor()
    termination_log = overrides.get("termination_log") or environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG
    try:
        config = RunnerConfig.resolve(environ, defaults=_env_defaults(env), **overrides)
        flow = _load_flow(path, config)
        parameters = dict(config.spec.parameters)
        flow.resolve_parameters(parameters)
    except Exception as exc:  # noqa: BLE001 - every failure before the cluster exists is reported the same way
        monitor.say(f"cannot start the run: {exc}")
        if pickup is not None:
            pickup.close()
        outcome = RunOutcome(state=_failed(f"infrastructure error: {exc}"), exit_code=EXIT_INFRA)
        _write_termination_log(termination_log, outcome.state, monitor)
        return outcome
    monitor.worker_processes = config.spec.worker_processes
    per_pod = f" ({config.spec.worker_processes} per pod)" if config.spec.worker_processes > 1 else ""
    monitor.say(f"run {config.spec.identifier}: flow {flow.name!r}, workers {config.spec.min_workers}.."
                f"{config.spec.max_workers}{per_pod}, "
                f"image {config.image}, scheduler {config.scheduler_address}")
    session = _Session(config=config, flow=flow, parameters=parameters, monitor=monitor,
                       backend_factory=backend_factory)
    pickup = _start_pickup(config, monitor, started=pickup)
    with _signals(session.abort, enabled=install_signal_handlers):
        outcome = session.run()
    outcome = _with_worker_causes(outcome, monitor)
    if backend_factory is None:  # on the cluster: the Job's TTL by outcome (worker pods are gone already)
        _set_outcome_ttl(config, outcome, monitor)
    _write_termination_log(config.termination_log, outcome.state, monitor)
    _hand_over_results(config, outcome, pickup, monitor, cancelled=session.aborted.is_set())
    monitor.say(f"run {config.spec.identifier}{RUN_FINISHED_MARK}{_kind(outcome.state)} (exit code {outcome.exit_code}); "
                f"{monitor.summary()}")
    return outcome


class _Session:
    """The part of a run that owns a cluster: start, wait, stop, clean up."""

    def __init__(self, *, config: RunnerConfig, flow: Any, parameters: dict[str, Any], monitor: RunMonitor,
                 backend_factory: Callable[[RunnerConfig], Any] | None) -> None:
        self.config = config
        self.flow = flow
        self.parameters = parameters
        self.monitor = monitor
        self.backend_factory = backend_factory
        self.aborted = threading.Event()
        self.abort_reason = ""
        self.done = threading.Event()
        self.flow_state: Any = None
        self.flow_error: BaseException | None = None
        self.task_states: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.progress = ProgressCounter()
        self._workers_seen = (0, 0)
        self.initial_width = flow.initial_width(parameters)  # task runs ready the moment the flow starts

    def abort(self, reason: str) -> None:
        if not self.aborted.is_set():
            self.abort_reason = reason
            self.aborted.set()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        cluster = client = backend = None
        try:
            backend = self._backend()
            asyncio.run(self._prepare(backend))
            cluster = self._cluster(backend)
            client = self._client(cluster)
            thread = threading.Thread(target=self._run_flow, args=(client,), name="dok-flow", daemon=True)
            thread.start()
            outcome = self._wait()
        except UnsatisfiableResources as exc:  # the run's own settings: a failed run, not an infrastructure error
            self.monitor.say(f"cannot run the flow: {exc.message}")
            outcome = RunOutcome(state=self._partial("Failed", f"{exc.message} (hint: {exc.hint})"),
                                 exit_code=exc.exit_code, identifier=self.config.spec.identifier)
        except Exception as exc:  # noqa: BLE001 - reported as an infrastructure failure
            error = self.monitor.fatal_error or exc
            self.monitor.say(f"infrastructure failure: {error}")
            outcome = self._infra_outcome(error)
        finally:
            self._shutdown(client, cluster, backend)
            self.report_progress(final=True)
        return outcome

    def _backend(self) -> Any:
        if self.backend_factory is not None:
            return self.backend_factory(self.config)
        from dok.runner.backend import PodWorkerBackend
        from dok.runner.kube import connect

        if self.config.spec.backend == "operator":
            from dok.runner.operator_backend import OperatorWorkerBackend

            return OperatorWorkerBackend(config=self.config, kube=connect())
        return PodWorkerBackend(config=self.config, kube=connect())

    async def _prepare(self, backend: Any) -> None:
        await backend.prepare()
        self._check_task_resources(getattr(backend, "worker_resources", None))
        prestart = getattr(backend, "prestart", None)  # optional: start the first workers before the scheduler
        pods = pods_for(self.first_workers(), self.config.spec.worker_processes)
        if prestart is not None and pods > 0:
            names = await asyncio.gather(*(prestart(self.config.scheduler_address) for _ in range(pods)))
            self.monitor.say(f"scaling: started worker(s) {', '.join(names)} early (they join once the scheduler "
                             f"is up; {self.initial_width} task(s) ready at the start)")

    def first_workers(self) -> int:
        """Workers to ask for before anything is measured: what the tasks ready at the start need (one worker
        thread each), between min and max workers (`dok.core.scaling.initial_workers`)."""
        from dok.core.scaling import initial_workers

        s = self.config.spec
        return initial_workers(self.initial_width, nthreads=self.config.nthreads, minimum=s.min_workers,
                               maximum=s.max_workers, covered=s.job_worker_threads)

    def _check_task_resources(self, has: Mapping[str, float] | None) -> None:
        """Fail now when a task asks for Dask resources (e.g. GPU) that no worker pod of this run will have:
        every worker is made from the same pod spec, so waiting would never end."""
        from dok.core.flow import task_resources
        from dok.core.resources import missing_task_resources

        if has is None:  # a backend that does not know (local processes): Dask decides
            return
        missing = missing_task_resources(task_resources(self.flow), has)
        if missing:
            raise UnsatisfiableResources(
                "no worker of this run can ever provide what a task needs: " + "; ".join(missing) + " (every "
                "worker pod has the run's worker_resources and worker_template)",
                hint="give the workers the resource, e.g. --worker-resources cpu=1,memory=4Gi,nvidia.com/gpu=1 "
                     "(worker_resources on the environment), or drop resources= from the task")

    def _cluster(self, backend: Any) -> Any:
        from dok.core.scaling import settings_for
        from dok.runner.cluster import DokCluster, dashboard_address
        from dok.runner.health import HealthPolicy

        c, s = self.config, self.config.spec
        policy = HealthPolicy(start_timeout=s.worker_start_timeout, failure_budget=c.worker_failure_budget,
                              scheduler_address=c.scheduler_address)
        cluster = DokCluster(backend=backend, monitor=self.monitor, policy=policy,
                             contact_address=c.scheduler_address, host=c.scheduler_host, port=s.scheduler_port,
                             watch_interval=s.watch_interval, worker_nthreads=c.nthreads,
                             dashboard=dashboard_address(enabled=s.dashboard == "on", host=c.scheduler_host),
                             job_worker_threads=s.job_worker_threads, worker_processes=s.worker_processes)
        # The flow is about to submit work: ask for the first workers now rather than on Adaptive's first tick
        # (Adaptive takes over at once and retires them after `wait_count` idle checks if they are not needed).
        cluster.scale(self.first_workers())
        cluster.adapt(minimum=s.min_workers, maximum=s.max_workers, interval=f"{s.adapt_interval}s",
                      wait_count=s.adapt_wait_count, target_duration=f"{s.adapt_target_duration}s",
                      settings=settings_for(s))
        per_pod = f", {s.worker_processes} per pod" if s.worker_processes > 1 else ""
        self.monitor.say(f"scheduler listening on {c.scheduler_host}:{s.scheduler_port}; adaptive scaling "
                         f"between {s.min_workers} and {s.max_workers} worker(s) ({backend.description}{per_pod})")
        if cluster.dashboard_port is not None:
            self.monitor.say(f"dashboard on port {cluster.dashboard_port}: `dok dashboard {s.identifier}`")
        return cluster

    def _client(self, cluster: Any) -> Any:
        from distributed import Client

        return Client(cluster, set_as_default=False)

    def _run_flow(self, client: Any) -> None:
        from dok.core import DaskExecutor

        try:
            executor = DaskExecutor(client, fetch=self.config.spec.result_fetch)  # type: ignore[arg-type]
            self.flow_state = self.flow.run(self.parameters, executor=executor,
                                            on_task_state=self._on_task_state)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.flow_error = exc
        finally:
            self.done.set()

    def _on_task_state(self, name: str, state: Any) -> None:
        self.progress.add(name, kind_name(state))
        with self._lock:
            self.task_states[name] = state
            n = len(self.task_states)
        success = _is_success(state)
        if success and not _worth_printing(n):
            return  # large fan-outs: every failure, but only a sample of successes
        text = f"task {name}: {_kind(state)}"
        message = getattr(state, "message", "")
        if message and not success:
            text += f": {message.splitlines()[0][:300]}"
        self.monitor.say(f"{text}  [{n} finished]")

    def report_progress(self, *, final: bool = False) -> None:
        """A progress record in the job log (`dok.core.progress`) when one is due, or the last one (`final`)."""
        workers = self.monitor.worker_counts()
        if final or self.progress.due(workers_changed=workers != self._workers_seen):
            self._workers_seen = workers
            running, starting = (0, 0) if final else workers
            self.monitor.write_line(self.progress.record(running=running, starting=starting, final=final).line())

    def _wait(self) -> RunOutcome:
        while True:
            self.report_progress()
            if self.done.wait(0.2):
                break
            if self.monitor.fatal_event.is_set():
                return self._infra_outcome(self.monitor.fatal_error)
            if self.aborted.is_set():
                self.monitor.say(f"cancelling the run: {self.abort_reason}")
                return RunOutcome(state=self._partial("Cancelled", f"run cancelled: {self.abort_reason}"),
                                  exit_code=EXIT_FLOW_FAILED, identifier=self.config.spec.identifier)
        if self.flow_error is not None:
            if self.monitor.fatal_error is not None:
                return self._infra_outcome(self.monitor.fatal_error)
            raise RunnerError(f"the engine failed: {type(self.flow_error).__name__}: {self.flow_error}")
        state = self.flow_state
        if not _is_success(state) and self.monitor.fatal_error is not None:
            return self._infra_outcome(self.monitor.fatal_error)
        code = EXIT_SUCCESS if _is_success(state) else EXIT_FLOW_FAILED
        return RunOutcome(state=state, exit_code=code, identifier=self.config.spec.identifier)

    def _infra_outcome(self, error: BaseException | None) -> RunOutcome:
        message = f"infrastructure error: {error}"
        return RunOutcome(state=self._partial("Failed", message), exit_code=EXIT_INFRA,
                          identifier=self.config.spec.identifier)

    def _partial(self, kind: str, message: str) -> Any:
        with self._lock:
            task_states = dict(self.task_states)
        return _make_state(kind, message, task_states)

    def _shutdown(self, client: Any, cluster: Any, backend: Any) -> None:
        t0 = time.monotonic()
        if client is not None:
            try:
                client.close(timeout=10)
            except Exception as exc:  # noqa: BLE001
                self.monitor.say(f"warning: closing the Dask client: {exc}")
        if cluster is not None:
            try:
                cluster.close(timeout=CLOSE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - leftovers are deleted below
                self.monitor.say(f"warning: closing the cluster: {type(exc).__name__}: {exc}")
        if backend is not None:
            try:
                leftovers = asyncio.run(backend.cleanup())
                if leftovers:
                    self.monitor.say(f"cleanup: deleted leftover worker(s) {', '.join(leftovers)}")
            except Exception as exc:  # noqa: BLE001
                self.monitor.say(f"warning: cleanup of worker pods failed ({exc}); the ownerReference to the "
                                 "job pod lets Kubernetes delete them when the job pod goes")
        self.monitor.say(f"cluster closed, workers deleted in {time.monotonic() - t0:.1f}s")


# -- helpers ------------------------------------------------------------------------------------------------
def _set_outcome_ttl(config: RunnerConfig, outcome: RunOutcome, monitor: RunMonitor) -> None:
    from dok.runner.kube import connect
    from dok.runner.teardown import apply_outcome_ttl

    try:
        kube = connect()
    except Exception as exc:  # noqa: BLE001 - the TTL is a bonus
        monitor.say(f"warning: cannot reach the API to set the Job's TTL: {exc}")
        return
    apply_outcome_ttl(kube, namespace=config.namespace, pod_name=config.pod_name, spec=config.spec,
                      success=_is_success(outcome.state), say=monitor.say)


def _with_worker_causes(outcome: RunOutcome, monitor: RunMonitor) -> RunOutcome:
    """The outcome whose State also names the worker pods that ended early, and why (OOMKilled, Evicted…)."""
    from dok.runner.causes import with_causes

    return dataclasses.replace(outcome, state=with_causes(outcome.state, monitor.ended_early()))


def _worth_printing(n: int) -> bool:
    """Print the first 100 finished tasks, then every 10th up to 1000, then every 100th."""
    return n <= 100 or (n <= 1000 and n % 10 == 0) or n % 100 == 0


def _env_defaults(env: DaskOnKubernetesEnvironment | None) -> dict[str, Any]:
    """The worker bounds a DaskOnKubernetesEnvironment carries (below DOK_* variables in priority)."""
    if env is None:
        return {}
    return {"min_workers": env.min_workers, "max_workers": env.max_workers}


def _load_flow(path: str, config: RunnerConfig) -> Any:
    from dok.core import bundle

    if not config.bundle_sha256:
        raise ConfigError("DOK_BUNDLE_SHA256 is missing: refusing to load a flow bundle whose hash cannot be "
                          "checked", hint="run an image built by `dok build` (it sets DOK_BUNDLE_SHA256)")
    return bundle.load(path, expected_sha256=config.bundle_sha256)


def _kind(state: Any) -> str:
    kind = getattr(state, "kind", None)
    return str(getattr(kind, "name", kind) or type(state).__name__)


def _is_success(state: Any) -> bool:
    check = getattr(state, "is_successful", None)
    return bool(check()) if callable(check) else False


def _make_state(kind: str, message: str, task_states: Mapping[str, Any] | None = None) -> Any:
    from dok.core import states

    cls = getattr(states, kind)
    now = time.time()
    return cls(message=message, end=now, task_states=dict(task_states or {}))


def _failed(message: str) -> Any:
    return _make_state("Failed", message)


def _write_termination_log(path: str, state: Any, monitor: RunMonitor) -> None:
    try:
        from dok.core import encode_summary

        text = encode_summary(state)
    except Exception as exc:  # noqa: BLE001
        monitor.say(f"warning: cannot encode the final State ({exc})")
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        monitor.say(f"warning: cannot write the termination log {path}: {exc}")


def _start_pickup(config: RunnerConfig, monitor: RunMonitor, *, started: Any = None) -> Any:
    """The pick-up server (dok.runner.results) when the launcher asked for one: no result location and a
    pick-up timeout set (an attached client); `started` (one `__main__` started early) is used when it is
    wanted, closed when not. None otherwise, or when the port is taken (said in the log)."""
    spec = config.spec
    if spec.result_location is not None or spec.result_pickup_timeout is None:
        if started is not None:
            started.close()
        return None
    if started is not None:
        return started
    from dok.runner.results import PickupServer

    try:
        return PickupServer().start()
    except OSError as exc:
        monitor.say(f"results: cannot serve them for pick-up ({exc}); only the summary will be returned")
        return None


def _hand_over_results(config: RunnerConfig, outcome: RunOutcome, pickup: Any, monitor: RunMonitor, *,
                       cancelled: bool) -> None:
    """Write the results to the result location, or wait (bounded) for the client to pick them up."""
    from dok.runner.results import deliver

    spec = config.spec
    try:
        if spec.result_location is None and (pickup is None or cancelled):
            return
        deliver(state=outcome.state, identifier=spec.identifier, location=spec.result_location, server=pickup,
                exit_code=outcome.exit_code,
                pickup_timeout=spec.result_pickup_timeout or 0.0, say=monitor.say)
    finally:
        if pickup is not None:
            pickup.close()


class _signals:
    """Context manager: SIGTERM/SIGINT call `abort(reason)` (main thread only); previous handlers restored."""

    def __init__(self, abort: Callable[[str], None], *, enabled: bool) -> None:
        self.abort = abort
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _signals:
        if self.enabled:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.abort(f"{signal.Signals(signum).name} received")

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
