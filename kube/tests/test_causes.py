"""end_cause: why a pod ended early, by name (OOMKilled, Evicted, Preempted, Deleted, ImagePull, Unschedulable)."""

from __future__ import annotations

import pytest

from dok.kube import CAUSES, end_cause, pod_snapshot


def pod(phase="Running", state=None, *, reason=None, message=None, conditions=(), deleting=False):
    meta = {"name": "w-1", "uid": "u"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:05:00Z"
    status = {"phase": phase, "conditions": list(conditions),
              "containerStatuses": [{"name": "worker", "state": state or {"running": {}}}]}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return pod_snapshot({"metadata": meta, "spec": {"containers": [{"name": "worker", "image": "i:1"}]},
                         "status": status}, container="worker")


@pytest.mark.parametrize("snap,cause,words", [
    (pod("Failed", {"terminated": {"reason": "OOMKilled", "exitCode": 137}}), "OOMKilled", ("137", "memory limit")),
    (pod("Failed", {"terminated": {"reason": "Error", "exitCode": 137}}, reason="Evicted",
         message="The node was low on resource: memory."), "Evicted", ("low on resource",)),
    (pod("Running", deleting=True, conditions=[{"type": "DisruptionTarget", "status": "True",
                                                "reason": "PreemptionByScheduler",
                                                "message": "preempted by pod big-1"}]), "Preempted", ("big-1",)),
    (pod("Running", deleting=True, conditions=[{"type": "DisruptionTarget", "status": "True",
                                                "reason": "EvictionByEvictionAPI"}]), "Evicted", ("drain",)),
    (pod("Running", deleting=True), "Deleted", ("deleted",)),
    (pod("Pending", {"waiting": {"reason": "ErrImagePull", "message": "not found"}}), "ImagePull",
     ("ErrImagePull", "not found")),
    (pod("Pending", {}, conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                     "message": "0/1 nodes: Insufficient memory"}]), "Unschedulable",
     ("Insufficient memory",)),
    (pod("Failed", {"terminated": {"reason": "Error", "exitCode": 3}}), "Error", ("exit code 3",)),
])
def test_cause_named_first(snap, cause, words):
    text = end_cause(snap)
    assert text is not None and text.split(":")[0] == cause and cause in CAUSES, text
    for word in words:
        assert word in text, text


def test_healthy_or_finished_pods_have_no_cause():
    assert end_cause(pod("Running")) is None
    assert end_cause(pod("Succeeded", {"terminated": {"reason": "Completed", "exitCode": 0}})) is None
    assert end_cause(pod("Pending", {"waiting": {"reason": "ContainerCreating"}})) is None


def test_oom_wins_over_deletion():
    snap = pod("Failed", {"terminated": {"reason": "OOMKilled", "exitCode": 137}}, deleting=True)
    assert end_cause(snap).startswith("OOMKilled")
