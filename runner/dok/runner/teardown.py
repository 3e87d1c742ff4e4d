"""Outcome-dependent teardown: how long the finished Job and its job pod stay after the flow ended.

Worker pods are deleted by the runner as soon as the flow ends (`run._Session._shutdown`). The Job and its
job pod — the job log (with the copied worker logs) and the final State in the termination message — stay
until the Job's `ttlSecondsAfterFinished` so that `dok logs`, `dok status` work after the run. The launcher
creates the Job with the failure TTL (`RunSpec.ttl_seconds_after_failure`, long: also what a runner killed
before it could decide leaves behind); when the flow succeeded the runner shortens it to
`RunSpec.ttl_seconds_after_success` by patching its own Job (found through the job pod's ownerReferences;
the runner's Role grants `get`/`patch` on jobs for this). `dok cleanup ID` / `dok run --rm` delete them at once.

`ttl_for` and `owner_job` are pure; `apply_outcome_ttl` is the small adapter that reads and patches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dok.core.runspec import RunSpec

__all__ = ["apply_outcome_ttl", "owner_job", "ttl_for"]


def ttl_for(spec: RunSpec, *, success: bool) -> int | None:
    """The Job's TTL (seconds) for this outcome; None = no TTL (kept until `dok cleanup`)."""
    return spec.ttl_seconds_after_success if success else spec.ttl_seconds_after_failure


def owner_job(pod: Mapping[str, Any]) -> str | None:
    """The name of the Job that owns this pod (its controller ownerReference), or None."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("kind") == "Job" and ref.get("name"):
            return str(ref["name"])
    return None


def apply_outcome_ttl(kube: Any, *, namespace: str, pod_name: str, spec: RunSpec, success: bool,
                      say: Callable[[str], None]) -> int | None:
    """After a success, set the Job's ttlSecondsAfterFinished to the success TTL (the launcher created it with
    the failure TTL, which the runner does not see: it is not in the job pod's environment, so after a failure
    nothing is changed). Best effort: a failure is printed (the Job keeps the failure TTL). Returns the TTL set."""
    if not success:
        say("teardown: the run failed: the Job and this pod stay for the failure TTL")
        return None
    wanted = ttl_for(spec, success=True)
    try:
        pod = kube.read("Pod", namespace, pod_name)
        job_name = owner_job(pod) if pod is not None else None
        if job_name is None:
            say("teardown: no Job owns this pod; nothing to set")
            return None
        job = kube.read("Job", namespace, job_name)
        if job is None:
            return None
        current = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if current == wanted:
            return current
        kube.patch("Job", namespace, job_name, {"spec": {"ttlSecondsAfterFinished": wanted}})
    except Exception as exc:  # noqa: BLE001 - the run's outcome matters more than its TTL
        say(f"warning: could not set the Job's TTL to {wanted} s ({type(exc).__name__}: {exc}); "
            "it keeps the failure TTL")
        return None
    say(f"teardown: Job {job_name} and this pod stay {_human(wanted)} after the run (success TTL)")
    return wanted


def _human(seconds: int | None) -> str:
    if seconds is None:
        return "until `dok cleanup`"
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
