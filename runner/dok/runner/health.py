"""Worker health: what a worker pod's status means, and what the runner does about it (pure functions).

`observe_pod(pod)` reads a pod's API JSON with the shared `dok.kube.pods.pod_snapshot` (the launcher's job-pod
watch reads its pod the same way) and turns it into a `WorkerObservation` (pending / running / exited /
failed / deleting, with a `Problem` such as ErrImagePull or Unschedulable and the kubelet's or scheduler's text).
`HealthPolicy.decide(...)` turns observations into decisions, so the run never hangs silently:
- `Replace`: the worker is gone for a reason that is not fatal (deleted by someone, exited, evicted, crashed
  after it had joined): drop it from the cluster's spec and let Adaptive ask for a new one;
- `Fatal`: a worker cannot start (image pull error, unschedulable, crash before joining the scheduler,
  stuck for longer than the start timeout) or workers keep crashing: fail the run with a message that names
  the pod, the reason and the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dok.kube.causes import end_cause
from dok.kube.pods import IMAGE_PULL_REASONS, PodSnapshot, pod_snapshot
from dok.runner.exceptions import WorkerStartError

WorkerPhase = Literal["pending", "running", "exited", "failed", "deleting"]

# Waiting reasons that mean "this will not start by itself" (after the start timeout) or "never" (at once).
WAITING_PROBLEMS = IMAGE_PULL_REASONS | frozenset({
    "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff", "RunContainerError",
    "PreCreateHookError", "PostStartHookError",
})
PERMANENT_PROBLEMS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
GONE_GRACE_SECONDS = 3.0  # a requested pod missing from a list this long after the request has vanished

_HINTS = {
    "ErrImagePull": "check that the worker image exists and that the node can pull it (registry, imagePullSecrets)",
    "ImagePullBackOff": "check that the worker image exists and that the node can pull it (registry, imagePullSecrets)",
    "InvalidImageName": "fix the image reference",
    "ErrImageNeverPull": "the image is not on the node and imagePullPolicy forbids pulling it",
    "Unschedulable": "lower the worker resource requests (DOK_WORKER_RESOURCES) or add cluster capacity",
    "CreateContainerConfigError": "a Secret or ConfigMap referenced by the environment is missing",
    "CrashLoopBackOff": "the worker process keeps crashing; see its log with `dok logs ID --workers`",
}


@dataclass(frozen=True, kw_only=True)
class Problem:
    """Why a worker is not running: a Kubernetes reason and its message (event/condition/status text)."""

    reason: str
    message: str = ""
    permanent: bool = False

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}" if self.message else self.reason


@dataclass(frozen=True, kw_only=True)
class WorkerObservation:
    name: str
    phase: WorkerPhase
    problem: Problem | None = None
    exit_code: int | None = None
    cause: str | None = None  # `dok.kube.causes.end_cause`: OOMKilled, Evicted, Preempted, Deleted, …


def observe_pod(pod: Mapping[str, Any]) -> WorkerObservation:
    """Classify one worker pod (API JSON, camelCase)."""
    return observe(pod_snapshot(pod, container="worker"))


def observe(snap: PodSnapshot) -> WorkerObservation:
    """Classify one worker pod from its snapshot (`dok.kube.pods`, shared with the launcher's job-pod watch)."""
    obs = _observe(snap)
    if obs.phase in ("failed", "deleting", "pending"):
        obs = WorkerObservation(name=obs.name, phase=obs.phase, problem=obs.problem, exit_code=obs.exit_code,
                                cause=end_cause(snap))
    return obs


def _observe(snap: PodSnapshot) -> WorkerObservation:
    name, phase, c = snap.name, snap.phase, snap.container
    if snap.deleting:
        return WorkerObservation(name=name, phase="deleting")
    terminated = c is not None and c.terminated
    if phase == "Failed" or (terminated and (c.exit_code or 0) != 0):
        if terminated:
            code = c.exit_code
            text = f"container exited with code {code}"
            if c.terminated_message:
                text += ": " + c.terminated_message[-500:]
            return WorkerObservation(name=name, phase="failed", exit_code=code,
                                     problem=Problem(reason=c.terminated_reason or "Error", message=text))
        return WorkerObservation(name=name, phase="failed",
                                 problem=Problem(reason=snap.reason or "Failed", message=snap.message))
    if phase == "Succeeded" or terminated:
        return WorkerObservation(name=name, phase="exited", exit_code=0)
    if phase == "Running" and c is not None and c.running:
        return WorkerObservation(name=name, phase="running")
    waiting = c.waiting_reason if c is not None else None
    if waiting in WAITING_PROBLEMS:
        return WorkerObservation(name=name, phase="pending", problem=Problem(
            reason=waiting, message=c.waiting_message, permanent=waiting in PERMANENT_PROBLEMS))
    if snap.unschedulable_reason is not None:
        return WorkerObservation(name=name, phase="pending", problem=Problem(
            reason=snap.unschedulable_reason, message=snap.unschedulable_message))
    if waiting:
        return WorkerObservation(name=name, phase="pending", problem=Problem(reason=waiting, message=c.waiting_message))
    return WorkerObservation(name=name, phase="pending")


# -- decisions ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Replace:
    """Drop this worker from the cluster spec; Adaptive asks for a new one if the load still needs it."""

    name: str
    why: str
    crashed: bool = False
    cause: str | None = None  # why its pod ended, by name (OOMKilled, Evicted, Preempted, Deleted, …)


@dataclass(frozen=True, kw_only=True)
class Fatal:
    """Fail the run: `error` names the pod, the reason and the text."""

    name: str
    error: WorkerStartError
    wants_log: bool = False


Decision = Replace | Fatal


class HealthPolicy:
    """Stateful only in the count of crashes of workers that had joined (`failures`)."""

    def __init__(self, *, start_timeout: float, failure_budget: int, scheduler_address: str = "") -> None:
        self.start_timeout = start_timeout
        self.failure_budget = failure_budget
        self.scheduler_address = scheduler_address
        self.failures = 0

    def decide(self, observations: Iterable[WorkerObservation], *, expected: Mapping[str, float],
               joined: set[str], now: float) -> list[Decision]:
        """`expected`: workers the cluster wants alive → when they were requested (monotonic seconds);
        `joined`: worker names that ever registered with the scheduler; `now`: monotonic seconds."""
        by_name = {o.name: o for o in observations}
        decisions: list[Decision] = []
        for name, requested_at in expected.items():
            age = now - requested_at
            obs = by_name.get(name)
            if obs is None:
                if age > GONE_GRACE_SECONDS:
                    decisions.append(Replace(name=name, why="its pod disappeared",
                                             cause="Deleted: its pod disappeared"))
                continue
            decision = self._decide_one(obs, age=age, joined=name in joined)
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _decide_one(self, obs: WorkerObservation, *, age: float, joined: bool) -> Decision | None:
        name = obs.name
        if obs.phase == "deleting":
            return Replace(name=name, why="its pod is being deleted (not by this run)",
                           cause=obs.cause or "Deleted: its pod was deleted while it ran")
        if obs.phase == "exited":
            return Replace(name=name, why="the worker exited")
        if obs.phase == "failed":
            problem = obs.problem or Problem(reason="Failed")
            if not joined:
                return Fatal(name=name, wants_log=True, error=WorkerStartError(
                    f"worker pod {name} failed before joining the scheduler: {problem}",
                    hint=_HINTS.get(problem.reason, "see the worker's log below"),
                    worker=name, reason=problem.reason))
            self.failures += 1
            if self.failures > self.failure_budget:
                return Fatal(name=name, wants_log=True, error=WorkerStartError(
                    f"worker pods keep failing: {self.failures} crashed (allowed {self.failure_budget}); "
                    f"last: {name}: {problem}", hint="see the worker's log below; raise memory limits if OOMKilled",
                    worker=name, reason=problem.reason))
            return Replace(name=name, why=f"the worker crashed ({problem})", crashed=True, cause=obs.cause)
        if obs.phase == "pending":
            problem = obs.problem
            if problem is not None and problem.permanent:
                return Fatal(name=name, error=WorkerStartError(
                    f"worker pod {name} cannot start: {problem}", hint=_HINTS.get(problem.reason),
                    worker=name, reason=problem.reason))
            if age > self.start_timeout:
                what = str(problem) if problem else "still Pending (no reason reported)"
                return Fatal(name=name, error=WorkerStartError(
                    f"worker pod {name} did not start within {self.start_timeout:g}s: {what}",
                    hint=_HINTS.get(problem.reason if problem else "",
                                    "raise DOK_WORKER_START_TIMEOUT if the cluster is just slow"),
                    worker=name, reason=problem.reason if problem else "Pending"))
            return None
        if obs.phase == "running" and not joined and age > self.start_timeout:
            return Fatal(name=name, wants_log=True, error=WorkerStartError(
                f"worker pod {name} is running but did not join the scheduler at {self.scheduler_address or '?'} "
                f"within {self.start_timeout:g}s",
                hint="check that worker pods can reach the job pod's IP on the scheduler port (NetworkPolicy?)",
                worker=name, reason="NotJoined"))
        return None
