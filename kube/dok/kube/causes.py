"""Why a pod ended early, in one short phrase: `end_cause(snapshot)`.

A pod of a run that stops before the run is done (or never starts) has one of a few causes users must be
told by name, because each has its own fix: the kernel killed it over its memory limit (`OOMKilled`), the
kubelet or an eviction evicted it (`Evicted`), the scheduler preempted it for a higher-priority pod
(`Preempted`), someone deleted it (`Deleted`), its image cannot be pulled (`ImagePull`), no node can take it
(`Unschedulable`), or its container failed (`Error`). The runner names its worker pods' causes in the
flow's final State; the launcher names the job pod's. Pure function of a `PodSnapshot`; no API calls.
"""

from __future__ import annotations

from .pods import IMAGE_PULL_REASONS, PodSnapshot

__all__ = ["CAUSES", "end_cause"]

CAUSES = ("OOMKilled", "Evicted", "Preempted", "Deleted", "ImagePull", "Unschedulable", "Error")

_PREEMPTION = frozenset({"PreemptionByScheduler", "PreemptionByKubeScheduler"})
_EVICTION = {
    "EvictionByEvictionAPI": "evicted through the Eviction API (e.g. a node drain)",
    "DeletionByTaintManager": "evicted because of a node taint (e.g. the node is not ready)",
    "TerminationByKubelet": "evicted by the kubelet (node pressure or shutdown)",
    "DeletionByPodGC": "deleted by the pod garbage collector (its node is gone)",
}


def end_cause(snap: PodSnapshot) -> str | None:
    """`OOMKilled: …`, `Evicted: …`, `Preempted: …`, `Deleted: …`, `ImagePull: …`, `Unschedulable: …`,
    `Error: …` (the first word is one of `CAUSES`), or None while nothing is wrong with the pod."""
    c = snap.container
    if c is not None and c.terminated_reason == "OOMKilled":
        return _join("OOMKilled", f"over its memory limit (exit code {c.exit_code})",
                     "raise the memory limit (worker_resources / resources) or use less memory per task")
    if snap.disruption_reason in _PREEMPTION or snap.reason == "Preempting":
        return _join("Preempted", snap.disruption_message or snap.message or "by the scheduler for a "
                     "higher-priority pod")
    if snap.reason == "Evicted":
        return _join("Evicted", snap.message)
    if snap.disruption_reason in _EVICTION:
        return _join("Evicted", _EVICTION[snap.disruption_reason])
    if c is not None and c.waiting_reason in IMAGE_PULL_REASONS:
        return _join("ImagePull", f"{c.waiting_reason}: {snap.failed_event or c.waiting_message}".rstrip(": "))
    if snap.unschedulable_reason == "Unschedulable":
        return _join("Unschedulable", snap.unschedulable_message)
    if snap.deleting:
        return _join("Deleted", "its pod was deleted while it ran")
    if c is not None and c.terminated and (c.exit_code or 0) != 0:
        detail = f"{c.terminated_reason or 'exited'} with exit code {c.exit_code}"
        if c.signal:
            detail += f", signal {c.signal}"
        return _join("Error", detail)
    if snap.phase == "Failed":
        return _join("Error", f"{snap.reason or 'Failed'}: {snap.message}".rstrip(": "))
    return None


def _join(cause: str, detail: str, hint: str = "") -> str:
    text = f"{cause}: {detail}" if detail else cause
    return f"{text} ({hint})" if hint else text
