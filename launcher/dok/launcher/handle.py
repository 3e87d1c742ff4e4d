"""A run on the cluster, seen from the client: `RunHandle` (returned by `execute()`, or re-attached by
identifier) waits for the run while streaming the job pod's log and worker scaling, returns the flow's
final State (the full one picked up from the runner, else the summary decoded from the job pod's termination
message), cancels, and cleans up by label.

Waiting is observe → decide, like the runner's `HealthPolicy`: `_observe` reads the run into a
`watch.RunView` (pods through the shared `dok.kube.pods.pod_snapshot`), the pure `watch.WatchPolicy` decides
(failure modes are explicit: an image that cannot be pulled, a pod that cannot be created or scheduled, a job
pod deleted by hand or ending without a State each raise an `InfrastructureError` (CLI exit 3) naming the
pod, the reason and the message — never a silent hang), and `_wait` is the thin polling loop around them,
riding out API server blips with the shared retry policy. Log following is `follow.LogFollower`. Cleanup
deletes the Job (background propagation) and every pod with the run's identifier label, treats 404 as done,
and waits (bounded) until nothing with the identifier remains.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from dok.core import labels as core_labels
from dok.core.names import PROGRESS_MARK, RUN_FINISHED_MARK, WORKER_LOG_MARK
from dok.kube import Forbidden, NotFound, RetryPolicy, created_text, labels_of, name_of, pod_snapshot
from dok.kube import retry as kube_retry

from . import pull_secret
from .exceptions import ApiUnavailable, ClusterUnreachable, RunNotFound
from .follow import LogFollower
from .kube import Kube
from .manifests import CONTAINER_NAME, OPERATOR_GROUP, OPERATOR_RESOURCES, OPERATOR_VERSION, validate_identifier
from .watch import RunView, WaitOptions, WatchPolicy, decode_state, job_view

LOG_TAIL_WAIT = 1.0  # seconds to let the runner's last log lines arrive once the outcome is picked up
LOG_CATCHUP_WAIT = 3.0  # seconds `whole_log` waits for the log of a run that ended before it could be followed

__all__ = ["RunHandle", "RunStatus", "WaitOptions", "decode_state", "identifier_selector", "job_phase"]

Obj = dict[str, Any]


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
    return core_labels.identifier_selector(identifier)


def _component(obj: Mapping[str, Any]) -> str | None:
    return labels_of(obj).get(core_labels.COMPONENT_LABEL)


def _phase(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Unknown"


def _conditions(obj: Mapping[str, Any]) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def job_phase(job: Mapping[str, Any]) -> str:
    """Pending/Running/Succeeded/Failed from the Job's status (what `dok list` shows)."""
    status = job.get("status")
    if not status:
        return "Pending"
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return "Succeeded" if cond.get("type") == "Complete" else "Failed"
    return "Running" if status.get("active") else "Pending"


_job_phase = job_phase  # the name `dok list` imports

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
        self.result_location: str | None = None  # where the runner writes the full results (dok.launcher.results)
        self.pickup = False            # the runner serves the full results for `wait()` to fetch
        self.full_results = False      # `state` carries the full results (not only the termination summary)

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
            return cls(kube=kube, identifier=identifier, namespace=namespace, job_name=name_of(jobs[0]),
                       flow_name=labels_of(jobs[0]).get(core_labels.FLOW_LABEL), out=out)
        pods = kube.list_pods(namespace, sel)
        if pods:
            return cls(kube=kube, identifier=identifier, namespace=namespace,
                       flow_name=labels_of(pods[0]).get(core_labels.FLOW_LABEL), out=out)
        raise RunNotFound(f"no run with identifier {identifier!r} in namespace {namespace!r}",
                          hint="list runs with `dok list` (and check --namespace)")

    # -- looking ----------------------------------------------------------------------------------------
    def pods(self) -> tuple[list[Obj], list[Obj]]:
        """(job pods, worker pods) with this run's identifier, oldest first."""
        pods = self.kube.list_pods(self.namespace, self.selector)
        pods.sort(key=lambda p: (str((p.get("metadata") or {}).get("creationTimestamp") or ""), name_of(p)))
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
            phase = _phase(pod)
            c = pod_snapshot(pod, container=CONTAINER_NAME).container
            if c is not None and c.waiting_reason is not None:
                reason = f"{c.waiting_reason}: {c.waiting_message}" if c.waiting_message else c.waiting_reason
            if c is not None and c.terminated:
                reason = c.terminated_reason
                if c.terminated_message:
                    try:
                        state = decode_state(c.terminated_message)
                    except Exception as exc:  # noqa: BLE001 - shown, not fatal
                        reason = f"{c.terminated_reason}; unreadable State: {exc}"
        elif job is not None:
            phase = job_phase(job)
        counts: dict[str, int] = {}
        for w in workers:
            p = "Terminating" if (w.get("metadata") or {}).get("deletionTimestamp") else _phase(w)
            counts[p] = counts.get(p, 0) + 1
        job_reason = None
        for cond in _conditions(job) if job is not None else []:
            if cond.get("status") == "True" and cond.get("type") in ("Failed", "Complete") and \
                    (cond.get("reason") or cond.get("message")):
                job_reason = f"{cond['type']}: {cond.get('reason') or ''}: {cond.get('message') or ''}".rstrip(": ")
        return RunStatus(identifier=self.identifier, namespace=self.namespace,
                         job_name=name_of(job) if job is not None else self.job_name,
                         flow_name=labels_of(job).get(core_labels.FLOW_LABEL) if job is not None else self.flow_name,
                         phase=phase, job_pod=name_of(pod) if pod is not None else None, pod_reason=reason,
                         workers=counts, created=created_text(job) if job is not None else None, state=state,
                         job_reason=job_reason)

    # -- waiting ----------------------------------------------------------------------------------------
    def wait(self, *, stream_logs: bool = True, timeout: float | None = None, cleanup: bool | None = None,
             options: WaitOptions | None = None, on_line: Callable[[str], None] | None = None,
             worker_logs: bool = False, whole_log: bool = False) -> Any:
        """Wait for the run to end and return the flow's final State (per-task States included).

        Streams the job pod's log (and worker pod count changes) while waiting when `stream_logs`; the
        worker logs the runner copies into it (`[worker NAME] …`) only with `worker_logs`.
        Raises InfrastructureError subclasses when the platform fails. The worker pods are gone when the flow
        ends (the runner deletes them); the finished Job and its job pod stay until the Job's TTL (short after
        a success, long after a failure: `ttl_seconds_after_success`/`_failure`) for `logs()`/`status()`.
        `whole_log` (`dok run`): a run that ended before its log could be read (the kubelet reports the job
        container a second after it starts) still gets its log shown, read once the API serves it (at most
        `LOG_CATCHUP_WAIT` s more); without it the State is returned at once.
        `cleanup`: None (default) deletes everything only when waiting fails (an infrastructure error: the Job
        would never finish); True (`dok run --rm`) also at the end; False never (a KeyboardInterrupt is left to
        the caller, which should `cancel()`)."""
        options = options or WaitOptions()
        pickup = self._start_pickup()
        try:
            state = self._wait(stream_logs=stream_logs, timeout=timeout, options=options, on_line=on_line,
                               worker_logs=worker_logs, pickup=pickup, whole_log=whole_log and stream_logs)
            state = self._full_state(state, pickup, on_line or self._print)
        except KeyboardInterrupt:
            if pickup is not None:
                pickup.stop()
            raise
        except BaseException:
            if pickup is not None:
                pickup.stop()
            if cleanup is not False:  # best effort: the original error is what the caller must see
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

    # -- full results (dok.launcher.results) ----------------------------------------------------------------
    def _start_pickup(self) -> Any:
        if not self.pickup:
            return None
        from .results import ResultPickup

        return ResultPickup(kube=self.kube, namespace=self.namespace, job_pod=self._scheduled_job_pod).start()

    def _scheduled_job_pod(self) -> str | None:
        """The job pod once it is on a node and not ending: the pick-up may connect before the kubelet reports
        it Running (about a second after its container starts; the runner listens from its first moment)."""
        job_pods, _ = self.pods()
        live = [p for p in job_pods if _phase(p) in ("Pending", "Running") and (p.get("spec") or {}).get("nodeName")
                and not (p.get("metadata") or {}).get("deletionTimestamp")]
        return name_of(live[-1]) if live else None

    def _full_state(self, state: Any, pickup: Any, emit: Callable[[str], None]) -> Any:
        """The State with the full results the pick-up fetched; else the summary State, saying why."""
        if pickup is None:
            return state
        payload = pickup.result(timeout=15.0)
        pickup.stop()
        if payload is not None and payload.identifier == self.identifier:
            self.full_results = True
            return payload.state
        emit(f"[dok] warning: the full results could not be fetched from the job pod "
             f"({pickup.error or 'no answer'}); the State holds the summary from its termination message")
        return state

    def result(self, *, location: str | None = None) -> Any:
        """The run's final State with its full results, read from the result location (`location`, else the
        one the run was started with); works after the run, for detached runs too. ResultsNotFound (exit 2)
        when there is no location or nothing there."""
        from .exceptions import ResultsNotFound
        from .results import location_of, read_stored

        if location is None:
            location = self.result_location
        if location is None:
            jobs = self.kube.list_jobs(self.namespace, self.selector)
            location = location_of(jobs[0]) if jobs else None
        if location is None:
            if self.full_results and self.state is not None:
                return self.state
            raise ResultsNotFound(f"run {self.identifier} has no result location: its full results went only to "
                                  "the client that waited for it",
                                  hint="start runs with --results URL (result_location=...) to read them later, "
                                       "or pass the location: dok result ID --results URL")
        return read_stored(location, self.identifier).state

    def _wait(self, *, stream_logs: bool, timeout: float | None, options: WaitOptions,
              on_line: Callable[[str], None] | None, worker_logs: bool = False, pickup: Any = None,
              whole_log: bool = False) -> Any:
        """The polling loop: observe (riding out API blips for `api_retry_window`), decide, act, sleep. Ends
        early when the pick-up holds the runner's payload with its exit code: the outcome is known then, a
        second before the kubelet reports the container's end; `wait()` takes the State from the payload. The
        runner offers it once its workers are deleted and the Job's TTL is set, then says its last line, which
        is awaited briefly (the job pod's status follows as its container exits)."""
        emit = on_line or self._print
        job_line = emit if worker_logs else _without_worker_lines(emit)
        if on_line is None:  # plain output: the runner's progress records are for a progress view (dok run)
            job_line = _without_progress_records(job_line)
        policy = WatchPolicy(identifier=self.identifier, options=options, start=time.monotonic(), timeout=timeout,
                             stream_logs=stream_logs, cancelling=self._cancelling)
        follower: LogFollower | None = None
        interval = min(2.0, max(options.poll_interval, 0.001) * 4)
        api_blips = RetryPolicy(initial=interval, maximum=interval, jitter=0.0, budget=options.api_retry_window)

        def api_down(exc: BaseException, wait: float, attempts: int) -> None:
            if attempts == 1:  # once per outage
                emit(f"[dok] API server unavailable ({getattr(exc, 'message', exc)}); retrying for "
                     f"{options.api_retry_window:g} s")

        try:
            while True:
                policy.cancelling = self._cancelling
                view = kube_retry.call(lambda: self._observe(policy, follower), policy=api_blips, on_retry=api_down,
                                       retry_on=lambda exc: isinstance(exc, (ClusterUnreachable, ApiUnavailable)))
                decision = policy.decide(view, time.monotonic())
                for line in decision.say:
                    emit(line)
                if decision.runner_exit_code is not None:
                    self.runner_exit_code = decision.runner_exit_code
                if decision.error is not None:
                    raise decision.error
                if decision.done:
                    return decision.state
                if decision.follow and follower is None:
                    follower = LogFollower(self.kube, self.namespace, decision.follow, job_line,
                                           last_line=self._is_last_line)
                    follower.start()
                if pickup is None:
                    time.sleep(options.poll_interval)
                elif pickup.arrived(options.poll_interval) and pickup.payload.exit_code is not None \
                        and pickup.payload.identifier == self.identifier:
                    self.runner_exit_code = pickup.payload.exit_code
                    if follower is not None:
                        follower.wait_last_line(LOG_TAIL_WAIT)  # the runner's last lines, said as it exits
                    elif whole_log:
                        self._catch_up_log(view, job_line, options)
                    return None
        finally:
            if follower is not None:
                follower.stop()

    def _catch_up_log(self, view: RunView, emit: Callable[[str], None], options: WaitOptions) -> None:
        """The whole job log, read once, for a run that ended before its log could be followed: the API serves
        it once the kubelet has reported the container (at most LOG_CATCHUP_WAIT s from now)."""
        pods = [p.name for p in view.job_pods if not p.deleting]
        if not pods:
            return

        def read() -> str | None:
            try:
                return self.kube.pod_log(self.namespace, pods[-1], container=CONTAINER_NAME, quick=True)
            except Exception:  # noqa: BLE001 - "waiting to start" until the kubelet reports the container
                return None

        text = kube_retry.poll(read, done=lambda t: t is not None, timeout=LOG_CATCHUP_WAIT,
                               interval=options.poll_interval)
        if text is None:
            emit(f"[dok] the job log was not readable yet: `dok logs {self.identifier}` shows it")
            return
        for line in text.splitlines():
            emit(f"[job] {line}")

    def _is_last_line(self, line: str) -> bool:
        return f"run {self.identifier}{RUN_FINISHED_MARK}" in line

    def _observe(self, policy: WatchPolicy, follower: LogFollower | None) -> RunView:
        """One look at the run, with what the policy needs to explain a failure: the registry's error for
        a pod that cannot pull its image, the Job's warnings while it has no pod, the last log lines of a
        job pod that ended (after letting the follower catch up)."""
        jobs = self.kube.list_jobs(self.namespace, self.selector)
        job_pods, workers = self.pods()
        snaps = []
        for pod in job_pods:
            snap = pod_snapshot(pod, container=CONTAINER_NAME)
            if snap.image_pull_error:
                snap = pod_snapshot(pod, container=CONTAINER_NAME, events=self._best_effort_events(snap.name, "Pod"))
            snaps.append(snap)
        job_events: tuple[str, ...] = ()
        if jobs and not job_pods:
            events = self._best_effort_events(name_of(jobs[0]), "Job")
            job_events = tuple(f"{e.get('reason')}: {e.get('message')}" for e in events if e.get("type") == "Warning")
        log_lines: tuple[str, ...] = ()
        log_tail = ""
        tracked = policy.tracked(tuple(snaps))
        if tracked is not None and tracked.container is not None and tracked.container.terminated:
            if follower is not None:
                follower.join(10.0)
                log_lines = tuple(follower.lines)
            if not tracked.container.terminated_message and not log_lines:
                log_tail = self._best_effort_log_tail(tracked.name)
        elif tracked is not None and tracked.deleting and follower is not None and not self._cancelling:
            follower.join(0.5)
        return RunView(jobs=tuple(job_view(j) for j in jobs), job_pods=tuple(snaps),
                       workers=tuple(pod_snapshot(w) for w in workers), job_events=job_events,
                       log_lines=log_lines, log_tail=log_tail)

    def _best_effort_events(self, name: str, kind: str) -> list[Obj]:
        try:
            return self.kube.events(self.namespace, name, kind=kind)
        except Exception:  # noqa: BLE001 - only an explanation
            return []

    def _best_effort_log_tail(self, pod: str) -> str:
        try:
            return self.kube.pod_log(self.namespace, pod, container=CONTAINER_NAME, tail_lines=5)
        except Exception:  # noqa: BLE001 - only an explanation
            return ""

    # -- stopping -------------------------------------------------------------------------------------
    def cancel(self, *, grace_period_seconds: int = 5) -> None:
        """Stop the run: the job pod gets SIGTERM (the runner closes its workers), the Job is deleted."""
        self._cancelling = True
        # The Job first: once it is being deleted its controller no longer replaces a deleted pod.
        for job in self.kube.list_jobs(self.namespace, self.selector):
            self.kube.delete_job(self.namespace, name_of(job))
        job_pods, _ = self.pods()
        for pod in job_pods:
            self.kube.delete_pod(self.namespace, name_of(pod), grace_period_seconds=grace_period_seconds)

    def cleanup(self, *, timeout: float = 60.0, grace_period_seconds: int = 5, stuck_after: float = 20.0) -> list[str]:
        """Delete the Job and every pod with the identifier; wait until gone. Returns what remains
        (empty when clean) — the names of objects still there after `timeout` seconds. A pod still
        terminating `stuck_after` seconds after this cleanup first saw it deleting (a busy kubelet, a
        container that ignores SIGTERM) is deleted again with no grace period, as the operator's own cleanup
        does: it leaves the API at once and the kubelet stops what is left of it."""
        deleting_since: dict[str, float] = {}
        forced: set[str] = set()

        def sweep() -> list[str]:
            # The operator backend's resources first: their controllers recreate the pods deleted below
            dask = self._sweep_dask()
            jobs = self.kube.list_jobs(self.namespace, self.selector)
            for job in jobs:
                if not (job.get("metadata") or {}).get("deletionTimestamp"):
                    self.kube.delete_job(self.namespace, name_of(job))
            pods = [pod_snapshot(p) for p in self.kube.list_pods(self.namespace, self.selector)]
            now = time.monotonic()
            for pod in pods:
                done = pod.phase in ("Succeeded", "Failed")
                if not pod.deleting or done:
                    self.kube.delete_pod(self.namespace, pod.name,
                                         grace_period_seconds=0 if done else grace_period_seconds)
                elif now - deleting_since.setdefault(pod.name, now) >= stuck_after and pod.name not in forced:
                    forced.add(pod.name)
                    self.kube.delete_pod(self.namespace, pod.name, grace_period_seconds=0)
            secrets = pull_secret.sweep(self.kube, self.namespace, self.selector)  # dok's own pull Secret
            return [f"Job/{name_of(j)}" for j in jobs] + [f"pod/{p.name}" for p in pods] + secrets + dask

        remaining = kube_retry.poll(sweep, done=lambda left: not left, timeout=timeout, interval=0.5)
        self._cleaned = not remaining
        return remaining

    def _sweep_dask(self) -> list[str]:
        """Backend "operator": delete the run's DaskClusters/DaskWorkerGroups by label (the operator can
        recreate a cluster's default group without an owner after its cluster is gone); none when the
        CRDs are not installed or we may not read them."""
        left: list[str] = []
        for plural in OPERATOR_RESOURCES:
            try:
                items = self.kube.list_custom(OPERATOR_GROUP, OPERATOR_VERSION, plural, self.namespace,
                                              self.selector)
            except (NotFound, Forbidden):
                continue
            for item in items:
                if not (item.get("metadata") or {}).get("deletionTimestamp"):
                    self.kube.delete_custom(OPERATOR_GROUP, OPERATOR_VERSION, plural, self.namespace, name_of(item))
            left += [f"{plural}/{name_of(i)}" for i in items]
        return left

    # -- logs -----------------------------------------------------------------------------------------
    def logs(self, *, follow: bool = False, workers: bool = False,
             emit: Callable[[str], None] | None = None) -> None:
        """Print the job pod's log (following it with `follow`), and with `workers` each worker's log: the
        running workers' own, and those the runner copied into the job pod's log before deleting them."""
        emit = emit or self._print
        job_line = _without_progress_records(emit if workers else _without_worker_lines(emit))
        job_pods, worker_pods = self.pods()
        if not job_pods and not worker_pods:
            raise RunNotFound(f"run {self.identifier} has no pods in namespace {self.namespace!r}",
                              hint="it finished and was cleaned up, or never started; see `dok status`")
        if workers:
            for pod in worker_pods:
                for line in self.kube.pod_log(self.namespace, name_of(pod)).splitlines():
                    emit(f"[{name_of(pod)}] {line}")
        for pod in job_pods[-1:]:
            c = pod_snapshot(pod, container=CONTAINER_NAME).container
            if follow and not (c is not None and c.terminated):
                for line in self.kube.stream_pod_log(self.namespace, name_of(pod), container=CONTAINER_NAME):
                    job_line(line)
            else:
                for line in self.kube.pod_log(self.namespace, name_of(pod), container=CONTAINER_NAME).splitlines():
                    job_line(line)


def _without_worker_lines(emit: Callable[[str], None]) -> Callable[[str], None]:
    """`emit` for the job pod's own lines only (not the worker logs copied into it, `[worker NAME] …`)."""
    def job_only(line: str) -> None:
        if not line.startswith(WORKER_LOG_MARK):
            emit(line)
    return job_only


def _without_progress_records(emit: Callable[[str], None]) -> Callable[[str], None]:
    """`emit` without the runner's progress records (`[dok-progress] {…}`, rendered by `dok run`'s view)."""
    def plain(line: str) -> None:
        if PROGRESS_MARK not in line:
            emit(line)
    return plain
