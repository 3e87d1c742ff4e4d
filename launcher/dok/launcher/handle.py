"""A run on the cluster, seen from the client: `RunHandle` (returned by `execute()`, or re-attached by
identifier) waits for the run while streaming the job pod's log and worker scaling, returns the flow's
final State (decoded from the job pod's termination message), cancels, and cleans up by label.

Failure modes are explicit: an image that cannot be pulled, a pod that cannot be created or scheduled,
a job pod deleted by hand or ending without a State each raise an `InfrastructureError` (CLI exit 3)
naming the pod, the reason and the message — never a silent hang. Cleanup deletes the Job (background
propagation) and every pod with the run's identifier label, treats 404 as done, and waits (bounded)
until nothing with the identifier remains.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from dok.core import labels as core_labels

from .exceptions import (ApiUnavailable, ClusterUnreachable, ConfigError, ImagePullError, InfrastructureError, PodLost,
                         RunNotFound, WaitTimeout)
from .kube import Kube
from .manifests import CONTAINER_NAME, validate_identifier

PULL_FAILURES = {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
CONFIG_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True, kw_only=True)
class WaitOptions:
    """Bounds on waiting: each one turns a would-be hang into an error naming what is stuck."""

    poll_interval: float = 0.5
    image_pull_grace: float = 15.0      # ErrImagePull persisting this long fails the run (BackOff: at once)
    config_error_grace: float = 10.0    # CreateContainerConfigError (e.g. missing Secret) this long
    unschedulable_timeout: float = 120.0
    pod_create_timeout: float = 30.0    # the Job has no pod this long and reports FailedCreate
    api_retry_window: float = 60.0      # keep retrying an unreachable API server this long
    cleanup_timeout: float = 60.0


@dataclass(frozen=True, kw_only=True)
class RunStatus:
    """What `dok status` shows."""

    identifier: str
    namespace: str
    job_name: str | None
    flow_name: str | None
    phase: str                    # Pending, Running, Succeeded, Failed, Unknown, Gone
    job_pod: str | None
    pod_reason: str | None
    workers: dict[str, int] = field(default_factory=dict)  # pod phase -> count
    created: str | None = None
    job_reason: str | None = None  # the Job's Failed/Complete condition, e.g. "DeadlineExceeded: ..."
    state: Any | None = None      # the flow's final State once the job pod ended


def identifier_selector(identifier: str) -> str:
    fn = getattr(core_labels, "identifier_selector", None)
    return fn(identifier) if fn else f"{core_labels.IDENTIFIER_LABEL}={identifier}"


def _component(obj: Any) -> str | None:
    return ((obj.metadata.labels or {}) if obj.metadata else {}).get(core_labels.COMPONENT_LABEL)


def _runner_status(pod: Any) -> Any | None:
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        if cs.name == CONTAINER_NAME:
            return cs
    statuses = (pod.status.container_statuses or []) if pod.status else []
    return statuses[0] if statuses else None


def decode_state(message: str) -> Any:
    from dok.core import decode_summary

    return decode_summary(message)


def _terminated(pod: Any) -> Any | None:
    cs = _runner_status(pod)
    return cs.state.terminated if cs is not None and cs.state is not None else None


def _waiting(pod: Any) -> Any | None:
    cs = _runner_status(pod)
    return cs.state.waiting if cs is not None and cs.state is not None else None


def _unschedulable(pod: Any) -> str | None:
    for cond in (pod.status.conditions or []) if pod.status else []:
        if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
            return cond.message or "Unschedulable"
    return None


_NOT_YET = object()


@dataclass(kw_only=True)
class _Watch:
    """What `wait` remembers between looks at the run."""

    emit: Callable[[str], None]
    stream_logs: bool
    options: WaitOptions
    start: float
    pod_uid: str | None = None
    pod_name: str | None = None
    logger: Any | None = None
    pull_since: float | None = None
    pull_message: str | None = None
    config_since: float | None = None
    unsched_since: float | None = None
    last_workers: tuple[int, int] | None = None
    last_phase: str | None = None


class RunHandle:
    """One run of a flow on the cluster, by identifier."""

    def __init__(self, *, kube: Kube, identifier: str, namespace: str, job_name: str | None = None,
                 flow_name: str | None = None, out: TextIO | None = None) -> None:
        self.kube = kube
        self.identifier = identifier
        self.namespace = namespace
        self.job_name = job_name
        self.flow_name = flow_name
        self.out = out
        self._cancelling = False
        self._cleaned = False
        self.state: Any | None = None
        self.remaining: list[str] = []
        self.runner_exit_code: int | None = None  # the job container's; 3 = the runner's infrastructure error
        self.warnings: list[str] = []  # what `execute` noticed while creating the run (e.g. TTL dropped)

    def __repr__(self) -> str:
        return f"<RunHandle {self.identifier} job={self.job_name} namespace={self.namespace}>"

    @property
    def selector(self) -> str:
        return identifier_selector(self.identifier)

    def _print(self, text: str) -> None:
        out = self.out or sys.stdout
        print(text, file=out, flush=True)

    # -- attach ---------------------------------------------------------------------------------------
    @classmethod
    def attach(cls, identifier: str, *, kube: Kube, namespace: str, out: TextIO | None = None) -> RunHandle:
        """The handle of an existing run; UsageError for an identifier that cannot be a run's (not a label
        value), RunNotFound when neither its Job nor its pods exist."""
        validate_identifier(identifier)
        sel = identifier_selector(identifier)
        jobs = kube.list_jobs(namespace, sel)
        if jobs:
            job = jobs[0]
            labels = job.metadata.labels or {}
            return cls(kube=kube, identifier=identifier, namespace=namespace, job_name=job.metadata.name,
                       flow_name=labels.get(core_labels.FLOW_LABEL), out=out)
        pods = kube.list_pods(namespace, sel)
        if pods:
            labels = pods[0].metadata.labels or {}
            return cls(kube=kube, identifier=identifier, namespace=namespace,
                       flow_name=labels.get(core_labels.FLOW_LABEL), out=out)
        raise RunNotFound(f"no run with identifier {identifier!r} in namespace {namespace!r}",
                          hint="list runs with `dok list` (and check --namespace)")

    # -- looking ----------------------------------------------------------------------------------------
    def pods(self) -> tuple[list[Any], list[Any]]:
        """(job pods, worker pods) with this run's identifier, oldest first."""
        pods = self.kube.list_pods(self.namespace, self.selector)
        pods.sort(key=lambda p: (p.metadata.creation_timestamp or 0, p.metadata.name))
        job = [p for p in pods if _component(p) == "job"]
        workers = [p for p in pods if _component(p) != "job"]
        return job, workers

    def status(self) -> RunStatus:
        jobs = self.kube.list_jobs(self.namespace, self.selector)
        job_pods, workers = self.pods()
        if not jobs and not job_pods and not workers:
            raise RunNotFound(f"no run with identifier {self.identifier!r} in namespace {self.namespace!r}",
                              hint="list runs with `dok list` (and check --namespace)")
        job = jobs[0] if jobs else None
        pod = job_pods[-1] if job_pods else None
        phase, reason, state = "Unknown", None, None
        if pod is not None:
            phase = (pod.status.phase if pod.status else None) or "Unknown"
            waiting, term = _waiting(pod), _terminated(pod)
            if waiting is not None:
                reason = f"{waiting.reason}: {waiting.message}" if waiting.message else waiting.reason
            if term is not None:
                reason = term.reason
                if term.message:
                    try:
                        state = decode_state(term.message)
                    except Exception as exc:  # noqa: BLE001 - shown, not fatal
                        reason = f"{term.reason}; unreadable State: {exc}"
        elif job is not None:
            phase = _job_phase(job)
        counts: dict[str, int] = {}
        for w in workers:
            p = (w.status.phase if w.status else None) or "Unknown"
            if w.metadata.deletion_timestamp:
                p = "Terminating"
            counts[p] = counts.get(p, 0) + 1
        created = None
        if job is not None and job.metadata.creation_timestamp:
            created = str(job.metadata.creation_timestamp)
        job_reason = None
        for cond in ((job.status.conditions or []) if job is not None and job.status else []):
            if cond.status == "True" and cond.type in ("Failed", "Complete") and (cond.reason or cond.message):
                job_reason = f"{cond.type}: {cond.reason or ''}: {cond.message or ''}".rstrip(": ")
        return RunStatus(identifier=self.identifier, namespace=self.namespace,
                         job_name=job.metadata.name if job else self.job_name,
                         flow_name=((job.metadata.labels or {}).get(core_labels.FLOW_LABEL) if job else self.flow_name),
                         phase=phase, job_pod=pod.metadata.name if pod else None, pod_reason=reason,
                         workers=counts, created=created, state=state, job_reason=job_reason)

    # -- waiting ----------------------------------------------------------------------------------------
    def wait(self, *, stream_logs: bool = True, timeout: float | None = None, cleanup: bool = True,
             options: WaitOptions | None = None, on_line: Callable[[str], None] | None = None) -> Any:
        """Wait for the run to end and return the flow's final State (per-task States included).

        Streams the job pod's log (and worker pod count changes) while waiting when `stream_logs`.
        Raises InfrastructureError subclasses when the platform fails; cleans up after itself unless
        `cleanup=False` (a KeyboardInterrupt is left to the caller, which should `cancel()`)."""
        options = options or WaitOptions()
        try:
            state = self._wait(stream_logs=stream_logs, timeout=timeout, options=options, on_line=on_line)
        except KeyboardInterrupt:
            raise
        except BaseException:
            if cleanup:  # best effort: the original error is what the caller must see
                try:
                    self.remaining = self.cleanup(timeout=options.cleanup_timeout)
                except Exception:  # noqa: BLE001
                    pass
            raise
        self.state = state
        if cleanup:
            self.remaining = self.cleanup(timeout=options.cleanup_timeout)
            if self.remaining:
                (on_line or self._print)(f"[dok] warning: still there after {options.cleanup_timeout:g} s: "
                                         f"{', '.join(self.remaining)}; run `dok cleanup {self.identifier}`")
        return state

    def _wait(self, *, stream_logs: bool, timeout: float | None, options: WaitOptions,
              on_line: Callable[[str], None] | None) -> Any:
        watch = _Watch(emit=on_line or self._print, stream_logs=stream_logs, options=options,
                       start=time.monotonic())
        api_down_since: float | None = None
        try:
            while True:
                now = time.monotonic()
                if timeout is not None and now - watch.start > timeout:
                    raise WaitTimeout(f"run {self.identifier} did not finish within {timeout:g} s",
                                      hint=f"it keeps running; see `dok status {self.identifier}`")
                try:
                    state = self._step(watch, now)
                    api_down_since = None
                except (ClusterUnreachable, ApiUnavailable) as exc:
                    # The API server restarts or hiccups: keep trying for a while (the run goes on).
                    if api_down_since is None:
                        api_down_since = now
                        watch.emit(f"[dok] API server unavailable ({exc.message}); retrying for "
                                   f"{options.api_retry_window:g} s")
                    if now - api_down_since > options.api_retry_window:
                        raise
                    time.sleep(min(2.0, max(options.poll_interval, 0.001) * 4))
                    continue
                if state is not _NOT_YET:
                    return state
                time.sleep(options.poll_interval)
        finally:
            if watch.logger is not None:
                watch.logger.stop()

    def _step(self, w: _Watch, now: float) -> Any:
        """One look at the run; returns the final State, or _NOT_YET."""
        options, emit = w.options, w.emit
        job_pods, workers = self.pods()
        running = sum(1 for p in workers if p.status and p.status.phase == "Running"
                      and not p.metadata.deletion_timestamp)
        counts = (running, len(workers))
        if w.stream_logs and counts != w.last_workers and (w.last_workers is not None or counts != (0, 0)):
            emit(f"[dok] workers: {running} running, {len(workers) - running} starting/stopping")
        w.last_workers = counts
        pod = None
        if w.pod_uid is not None:
            pod = next((p for p in job_pods if p.metadata.uid == w.pod_uid), None)
            if pod is None:
                raise PodLost(f"job pod {w.pod_name} was deleted before the flow finished"
                              + self._job_failure_note(), hint=f"nothing of run {self.identifier} is left "
                              "running; rerun the flow")
        elif job_pods:
            pod = job_pods[0]
            w.pod_uid, w.pod_name = pod.metadata.uid, pod.metadata.name
            if w.stream_logs:
                emit(f"[dok] job pod {w.pod_name}")
        if pod is None:
            self._check_no_pod(w.start, options)
            return _NOT_YET
        phase = (pod.status.phase if pod.status else None) or "Pending"
        if w.stream_logs and phase != w.last_phase and phase == "Running":
            emit(f"[dok] job pod {w.pod_name} is {phase}")
        w.last_phase = phase
        term = _terminated(pod)
        if term is not None:
            if w.logger:
                w.logger.join(10.0)
            return self._final_state(pod, term, w.logger)
        if phase in ("Failed", "Succeeded"):  # e.g. evicted: the pod ended without a container status
            reason = (pod.status.reason or phase) if pod.status else phase
            message = (pod.status.message or "") if pod.status else ""
            raise PodLost(f"job pod {w.pod_name} ended ({reason}) without reporting the flow's State"
                          + (f": {message}" if message else ""), hint="see `kubectl describe pod` for the node's side")
        if pod.metadata.deletion_timestamp and not self._cancelling:
            if w.logger:
                w.logger.join(0.5)
            raise PodLost(f"job pod {w.pod_name} is being deleted (not by this dok run) before the flow finished"
                          + self._job_failure_note(), hint="check who deleted it; the run's objects are being "
                          "cleaned up")
        waiting = _waiting(pod)
        reason = waiting.reason if waiting is not None else None
        if reason in PULL_FAILURES or reason == "ErrImagePull":
            w.pull_since = w.pull_since or now
            if reason == "ErrImagePull" and waiting.message:
                w.pull_message = waiting.message.strip()  # the real error; BackOff only says "Back-off"
            if reason != "ErrImagePull" or now - w.pull_since > options.image_pull_grace:
                image = pod.spec.containers[0].image if pod.spec and pod.spec.containers else "?"
                detail = w.pull_message or self._pull_event(w.pod_name) or (waiting.message or "").strip()
                raise ImagePullError(f"job pod {w.pod_name} cannot pull image {image}: {reason}: {detail}",
                                     hint="check the image name, `dok build --push`, the registry and "
                                          "imagePullSecrets")
        else:
            w.pull_since = None
        if reason in CONFIG_FAILURES:
            w.config_since = w.config_since or now
            if now - w.config_since > options.config_error_grace:
                raise ConfigError(f"job pod {w.pod_name} cannot start: {reason}: {(waiting.message or '').strip()}",
                                  hint="check the Secrets and settings it names")
        else:
            w.config_since = None
        unsched = _unschedulable(pod)
        if unsched:
            w.unsched_since = w.unsched_since or now
            if now - w.unsched_since > options.unschedulable_timeout:
                raise InfrastructureError(f"job pod {w.pod_name} is unschedulable for "
                                          f"{options.unschedulable_timeout:g} s: {unsched}",
                                          hint="lower its resource requests or add nodes")
        else:
            w.unsched_since = None
        if w.stream_logs and w.logger is None and phase == "Running":
            w.logger = _LogFollower(self.kube, self.namespace, w.pod_name, emit)
            w.logger.start()
        return _NOT_YET

    def _pull_event(self, pod_name: str | None) -> str:
        """The kubelet's last "Failed" event for the pod (it carries the registry's error)."""
        try:
            events = self.kube.pod_events(self.namespace, pod_name or "")
        except Exception:  # noqa: BLE001 - only an explanation
            return ""
        failed = [e for e in events if e.reason == "Failed" and e.message]
        return failed[-1].message.strip() if failed else ""

    def _job_failure_note(self) -> str:
        """`; the Job failed: DeadlineExceeded: …` when the Job says why its pod went away."""
        try:
            jobs = self.kube.list_jobs(self.namespace, self.selector)
        except Exception:  # noqa: BLE001 - only an explanation
            return ""
        for job in jobs:
            for cond in (job.status.conditions or []) if job.status else []:
                if cond.type == "Failed" and cond.status == "True":
                    return f"; the Job failed: {cond.reason}: {cond.message}"
        return ""

    def _check_no_pod(self, start: float, options: WaitOptions) -> None:
        jobs = self.kube.list_jobs(self.namespace, self.selector)
        if not jobs:
            if self._cancelling:
                raise PodLost(f"run {self.identifier} was cancelled")
            raise PodLost(f"the Job of run {self.identifier} was deleted before its pod started",
                          hint="someone ran `dok cancel`/`dok cleanup` or deleted the Job")
        job = jobs[0]
        for cond in (job.status.conditions or []) if job.status else []:
            if cond.type == "Failed" and cond.status == "True":
                raise InfrastructureError(f"Job {job.metadata.name} failed before its pod ran: "
                                          f"{cond.reason}: {cond.message}")
        if time.monotonic() - start > options.pod_create_timeout:
            why = self._job_events(job.metadata.name)
            raise InfrastructureError(f"Job {job.metadata.name} has no pod after {options.pod_create_timeout:g} s"
                                      + (f": {why}" if why else ""),
                                      hint="check the service account (`dok` runs setup first), quotas and "
                                           "admission policies")

    def _job_events(self, job_name: str) -> str:
        try:
            res = self.kube._call("list Job events", self.kube.core.list_namespaced_event, self.namespace,
                                  field_selector=f"involvedObject.kind=Job,involvedObject.name={job_name}")
        except Exception:  # noqa: BLE001 - best effort
            return ""
        warnings = [e for e in (res.items or []) if e.type == "Warning"]
        return "; ".join(f"{e.reason}: {e.message}" for e in warnings[-3:])

    def _final_state(self, pod: Any, term: Any, logger: _LogFollower | None) -> Any:
        message = (term.message or "").strip()
        name = pod.metadata.name
        self.runner_exit_code = term.exit_code
        if message:
            try:
                return decode_state(message)
            except Exception as exc:  # noqa: BLE001 - reported with context below
                raise PodLost(f"job pod {name} ended ({term.reason}, exit code {term.exit_code}) with an "
                              f"unreadable State: {exc}", hint=f"see `dok logs {self.identifier}`") from exc
        tail = ""
        if logger is None or not logger.lines:
            try:
                tail = " | ".join(self.kube.pod_log(self.namespace, name, container=CONTAINER_NAME,
                                                    tail_lines=5).strip().splitlines())
            except Exception:  # noqa: BLE001
                tail = ""
        else:
            tail = " | ".join(logger.lines[-5:])
        why = f"{term.reason or 'terminated'}, exit code {term.exit_code}"
        if term.signal:
            why += f", signal {term.signal}"
        raise PodLost(f"job pod {name} ended ({why}) without reporting the flow's State"
                      + (f"; last log lines: {tail[-800:]}" if tail else ""),
                      hint="the runner was killed (OOM, deadline, eviction?) or crashed; see the log above")

    # -- stopping -------------------------------------------------------------------------------------
    def cancel(self, *, grace_period_seconds: int = 5) -> None:
        """Stop the run: the job pod gets SIGTERM (the runner closes its workers), the Job is deleted."""
        self._cancelling = True
        # The Job first: once it is being deleted its controller no longer replaces a deleted pod.
        for job in self.kube.list_jobs(self.namespace, self.selector):
            self.kube.delete_job(self.namespace, job.metadata.name)
        job_pods, _ = self.pods()
        for pod in job_pods:
            self.kube.delete_pod(self.namespace, pod.metadata.name, grace_period_seconds=grace_period_seconds)

    def cleanup(self, *, timeout: float = 60.0, grace_period_seconds: int = 5) -> list[str]:
        """Delete the Job and every pod with the identifier; wait until gone. Returns what remains
        (empty when clean) — the names of objects still there after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        remaining: list[str] = []
        while True:
            jobs = self.kube.list_jobs(self.namespace, self.selector)
            for job in jobs:
                if not job.metadata.deletion_timestamp:
                    self.kube.delete_job(self.namespace, job.metadata.name)
            pods = self.kube.list_pods(self.namespace, self.selector)
            for pod in pods:
                done = pod.status is not None and pod.status.phase in ("Succeeded", "Failed")
                if not pod.metadata.deletion_timestamp or done:
                    self.kube.delete_pod(self.namespace, pod.metadata.name,
                                         grace_period_seconds=0 if done else grace_period_seconds)
            remaining = [f"Job/{j.metadata.name}" for j in jobs] + [f"pod/{p.metadata.name}" for p in pods]
            if not remaining:
                self._cleaned = True
                return []
            if time.monotonic() > deadline:
                return remaining
            time.sleep(0.5)

    # -- logs -----------------------------------------------------------------------------------------
    def logs(self, *, follow: bool = False, workers: bool = False,
             emit: Callable[[str], None] | None = None) -> None:
        """Print the job pod's log (following it with `follow`), and with `workers` each worker's log."""
        emit = emit or self._print
        job_pods, worker_pods = self.pods()
        if not job_pods and not worker_pods:
            raise RunNotFound(f"run {self.identifier} has no pods in namespace {self.namespace!r}",
                              hint="it finished and was cleaned up, or never started; see `dok status`")
        if workers:
            for pod in worker_pods:
                for line in self.kube.pod_log(self.namespace, pod.metadata.name).splitlines():
                    emit(f"[{pod.metadata.name}] {line}")
        for pod in job_pods[-1:]:
            if follow and _terminated(pod) is None:
                for line in self.kube.stream_pod_log(self.namespace, pod.metadata.name, container=CONTAINER_NAME):
                    emit(line)
            else:
                for line in self.kube.pod_log(self.namespace, pod.metadata.name,
                                              container=CONTAINER_NAME).splitlines():
                    emit(line)


def _job_phase(job: Any) -> str:
    st = job.status
    if st is None:
        return "Pending"
    for cond in st.conditions or []:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            return "Succeeded" if cond.type == "Complete" else "Failed"
    if st.active:
        return "Running"
    return "Pending"


class _LogFollower:
    """Follows one pod's log in a daemon thread, calling `emit` per line; reconnects if the stream drops
    while the container still runs (lines may then repeat, never go missing)."""

    def __init__(self, kube: Kube, namespace: str, pod: str, emit: Callable[[str], None]) -> None:
        self.kube, self.namespace, self.pod, self.emit = kube, namespace, pod, emit
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"dok-log-{pod}", daemon=True)
        self._last = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._stop.set()

    def _run(self) -> None:
        since: int | None = None
        for _attempt in range(20):
            try:
                for line in self.kube.stream_pod_log(self.namespace, self.pod, container=CONTAINER_NAME,
                                                     since_seconds=since):
                    if self._stop.is_set():
                        return
                    self._last = time.monotonic()
                    self.lines.append(line)
                    if len(self.lines) > 200:
                        del self.lines[:100]
                    self.emit(f"[job] {line}")
                return  # the stream ended: the container finished
            except Exception as exc:  # noqa: BLE001 - connection dropped; retry while the pod runs
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if self._stop.is_set():
                    return
                time.sleep(1.0)
                since = max(1, int(time.monotonic() - self._last) + 1)
