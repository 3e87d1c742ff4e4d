"""Watching a run from the client, as a pure policy: `WatchPolicy.decide(view, now)` turns one look at the
run (`RunView`: its Job, its job pods and worker pods read by `dok.kube.pods.pod_snapshot`, the events and
log lines that explain a failure) and the time into a `Decision` — lines to print, a log to start following,
the flow's final State, or the error that ends the wait.

This is the launcher's counterpart of the runner's `HealthPolicy` (observe → decide): no API calls, no
sleeping, so every failure mode is unit-tested with made-up views and clock values. Each bound turns a would-be
hang into an error naming the pod, the reason and the message: an image that cannot be pulled
(`image_pull_grace`), a container that cannot be created (`config_error_grace`, e.g. a missing Secret), a pod
the scheduler cannot place (`unschedulable_timeout`), a Job without a pod (`pod_create_timeout`), a job pod
deleted or ended without a State. The polling loop that feeds it lives in `handle.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dok.kube.causes import end_cause
from dok.kube.pods import CONTAINER_CONFIG_REASONS, IMAGE_PULL_REASONS, PodSnapshot, name_of

from .exceptions import ConfigError, ImagePullError, InfrastructureError, PodLost, WaitTimeout


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
class JobView:
    """The run's Job: its name and, once it failed, why ("DeadlineExceeded: Job was active longer …")."""

    name: str
    failed: str | None = None


def job_view(job: Mapping[str, Any]) -> JobView:
    failed = None
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            failed = f"{cond.get('reason')}: {cond.get('message')}"
    return JobView(name=name_of(job), failed=failed)


@dataclass(frozen=True, kw_only=True)
class RunView:
    """One look at the run. `job_pods` oldest first; `job_events` are the Job's Warning events ("reason:
    message") while it has no pod; `log_lines` what the log follower saw last; `log_tail` the job pod's last
    log lines, read when it ended without a State and nothing was followed."""

    jobs: tuple[JobView, ...] = ()
    job_pods: tuple[PodSnapshot, ...] = ()
    workers: tuple[PodSnapshot, ...] = ()
    job_events: tuple[str, ...] = ()
    log_lines: tuple[str, ...] = ()
    log_tail: str = ""


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What to do after one look: print `say`, follow the log of pod `follow`; when `done`, the wait ends with
    `state` (the flow's final State) or raises `error`. `runner_exit_code` is the job container's, once known."""

    say: tuple[str, ...] = ()
    follow: str | None = None
    done: bool = False
    state: Any = None
    error: BaseException | None = None
    runner_exit_code: int | None = None


def decode_state(message: str) -> Any:
    from dok.core import decode_summary

    return decode_summary(message)


@dataclass(kw_only=True)
class WatchPolicy:
    """Decides from views; remembers only what a decision needs across looks (the pod being watched, since
    when a problem lasts, what was last reported). `cancelling`: this client cancelled the run itself."""

    identifier: str
    options: WaitOptions = field(default_factory=WaitOptions)
    start: float
    timeout: float | None = None
    stream_logs: bool = True
    cancelling: bool = False
    pod_uid: str | None = None
    pod_name: str | None = None
    following: bool = False
    pull_since: float | None = None
    pull_message: str | None = None
    config_since: float | None = None
    unsched_since: float | None = None
    last_workers: tuple[int, int] | None = None
    last_phase: str | None = None

    def tracked(self, job_pods: tuple[PodSnapshot, ...]) -> PodSnapshot | None:
        """The job pod being watched (the first one seen), or the one that would be watched next."""
        if self.pod_uid is not None:
            return next((p for p in job_pods if p.uid == self.pod_uid), None)
        return job_pods[0] if job_pods else None

    def decide(self, view: RunView, now: float) -> Decision:
        say: list[str] = []
        try:
            return self._decide(view, now, say)
        except (InfrastructureError, ConfigError) as error:
            return Decision(say=tuple(say), done=True, error=error)

    # -- the steps of one decision (each raises the error that ends the wait) ----------------------------------
    def _decide(self, view: RunView, now: float, say: list[str]) -> Decision:
        options = self.options
        if self.timeout is not None and now - self.start > self.timeout:
            raise WaitTimeout(f"run {self.identifier} did not finish within {self.timeout:g} s",
                              hint=f"it keeps running; see `dok status {self.identifier}`")
        self._report_workers(view, say)
        pod = self.tracked(view.job_pods)
        if pod is None and self.pod_uid is not None:
            raise PodLost(f"job pod {self.pod_name} was deleted before the flow finished" + _failure_note(view),
                          hint=f"nothing of run {self.identifier} is left running; rerun the flow")
        if pod is None:
            self._no_pod(view, now)
            return Decision(say=tuple(say))
        if self.pod_uid is None:
            self.pod_uid, self.pod_name = pod.uid, pod.name
            if self.stream_logs:
                say.append(f"[dok] job pod {pod.name}")
        if self.stream_logs and pod.phase != self.last_phase and pod.phase == "Running":
            say.append(f"[dok] job pod {pod.name} is {pod.phase}")
        self.last_phase = pod.phase
        if pod.container is not None and pod.container.terminated:
            return self._final(pod, view, say)
        if pod.phase in ("Failed", "Succeeded"):  # e.g. evicted: the pod ended without a container status
            raise PodLost(f"job pod {pod.name} ended ({pod.reason or pod.phase}) without reporting the flow's "
                          "State" + (f": {pod.message}" if pod.message else "") + _cause_note(pod),
                          hint="see `kubectl describe pod` for the node's side")
        if pod.deleting and not self.cancelling:
            raise PodLost(f"job pod {pod.name} is being deleted (not by this dok run) before the flow finished"
                          + _cause_note(pod) + _failure_note(view),
                          hint="check who deleted it; the run's objects are being cleaned up")
        self._check_waiting(pod, now)
        self._check_scheduling(pod, now)
        follow = None
        if self.stream_logs and not self.following and pod.phase == "Running":
            self.following, follow = True, pod.name
        return Decision(say=tuple(say), follow=follow)

    def _report_workers(self, view: RunView, say: list[str]) -> None:
        running = sum(1 for w in view.workers if w.phase == "Running" and not w.deleting)
        counts = (running, len(view.workers))
        if self.stream_logs and counts != self.last_workers and (self.last_workers is not None or counts != (0, 0)):
            say.append(f"[dok] workers: {running} running, {len(view.workers) - running} starting/stopping")
        self.last_workers = counts

    def _no_pod(self, view: RunView, now: float) -> None:
        if not view.jobs:
            if self.cancelling:
                raise PodLost(f"run {self.identifier} was cancelled")
            raise PodLost(f"the Job of run {self.identifier} was deleted before its pod started",
                          hint="someone ran `dok cancel`/`dok cleanup` or deleted the Job")
        job = view.jobs[0]
        if job.failed:
            raise InfrastructureError(f"Job {job.name} failed before its pod ran: {job.failed}")
        if now - self.start > self.options.pod_create_timeout:
            why = "; ".join(view.job_events[-3:])
            raise InfrastructureError(f"Job {job.name} has no pod after {self.options.pod_create_timeout:g} s"
                                      + (f": {why}" if why else ""),
                                      hint="check the service account (`dok` runs setup first), quotas and "
                                           "admission policies")

    def _check_waiting(self, pod: PodSnapshot, now: float) -> None:
        reason, message = pod.waiting_reason, (pod.container.waiting_message if pod.container else "")
        if reason in IMAGE_PULL_REASONS:
            self.pull_since = now if self.pull_since is None else self.pull_since
            if reason == "ErrImagePull" and message:
                self.pull_message = message  # the real error; BackOff only says "Back-off"
            if reason != "ErrImagePull" or now - self.pull_since > self.options.image_pull_grace:
                detail = self.pull_message or pod.failed_event or message
                raise ImagePullError(f"job pod {pod.name} cannot pull image {pod.image or '?'}: {reason}: {detail}",
                                     hint="check the image name, `dok build --push`, the registry and "
                                          "imagePullSecrets")
        else:
            self.pull_since = None
        if reason in CONTAINER_CONFIG_REASONS:
            self.config_since = now if self.config_since is None else self.config_since
            if now - self.config_since > self.options.config_error_grace:
                raise ConfigError(f"job pod {pod.name} cannot start: {reason}: {message}",
                                  hint="check the Secrets and settings it names")
        else:
            self.config_since = None

    def _check_scheduling(self, pod: PodSnapshot, now: float) -> None:
        if pod.unschedulable_reason != "Unschedulable":
            self.unsched_since = None
            return
        self.unsched_since = now if self.unsched_since is None else self.unsched_since
        if now - self.unsched_since > self.options.unschedulable_timeout:
            raise InfrastructureError(f"job pod {pod.name} is unschedulable for "
                                      f"{self.options.unschedulable_timeout:g} s: "
                                      f"{pod.unschedulable_message or 'Unschedulable'}",
                                      hint="lower its resource requests or add nodes")

    def _final(self, pod: PodSnapshot, view: RunView, say: list[str]) -> Decision:
        """The job container ended: the flow's State from its termination message, or why there is none."""
        c = pod.container
        assert c is not None
        if c.terminated_message:
            try:
                state = decode_state(c.terminated_message)
            except Exception as exc:  # noqa: BLE001 - reported with context
                error = PodLost(f"job pod {pod.name} ended ({c.terminated_reason}, exit code {c.exit_code}) with an "
                                f"unreadable State: {exc}", hint=f"see `dok logs {self.identifier}`")
                error.__cause__ = exc
                return Decision(say=tuple(say), done=True, error=error, runner_exit_code=c.exit_code)
            return Decision(say=tuple(say), done=True, state=state, runner_exit_code=c.exit_code)
        if view.log_lines:
            tail = " | ".join(view.log_lines[-5:])
        else:
            tail = " | ".join(view.log_tail.strip().splitlines())
        why = f"{c.terminated_reason or 'terminated'}, exit code {c.exit_code}"
        if c.signal:
            why += f", signal {c.signal}"
        error = PodLost(f"job pod {pod.name} ended ({why}) without reporting the flow's State" + _cause_note(pod)
                        + (f"; last log lines: {tail[-800:]}" if tail else ""),
                        hint="the runner was killed (OOM, deadline, eviction?) or crashed; see the log above")
        return Decision(say=tuple(say), done=True, error=error, runner_exit_code=c.exit_code)


def _cause_note(pod: PodSnapshot) -> str:
    """`; cause: OOMKilled: …` naming why the job pod ended early (`dok.kube.causes`), or ""."""
    cause = end_cause(pod)
    return f"; cause: {cause}" if cause else ""


def _failure_note(view: RunView) -> str:
    """`; the Job failed: DeadlineExceeded: …` when the Job says why its pod went away."""
    failed = [j.failed for j in view.jobs if j.failed]
    return f"; the Job failed: {failed[0]}" if failed else ""
