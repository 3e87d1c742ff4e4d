"""pod_snapshot: a pod's API JSON (and its events) read into a typed snapshot."""

from __future__ import annotations

from dok.kube.pods import created_text, pod_snapshot


def pod(phase="Pending", state=None, *, name="p", container="runner", last=None, conditions=(), deleting=False,
        status_extra=None):
    cs = {"name": container, "state": state or {}}
    if last:
        cs["lastState"] = {"terminated": last}
    meta = {"name": name, "uid": "u-1", "labels": {"a": "b"}, "creationTimestamp": "2026-01-02T03:04:05Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:05:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "side", "image": "side:1"},
                                                      {"name": container, "image": "img:1"}]},
            "status": {"phase": phase, "conditions": list(conditions),
                       "containerStatuses": [{"name": "side", "state": {"running": {}}}, cs], **(status_extra or {})}}


def test_waiting_image_pull_with_the_registry_error_from_events():
    events = [{"type": "Warning", "reason": "Failed", "message": "pull: connection refused",
               "lastTimestamp": "2026-01-02T03:04:07Z"},
              {"type": "Normal", "reason": "Pulling", "message": "pulling", "lastTimestamp": "2026-01-02T03:04:06Z"},
              {"type": "Warning", "reason": "Failed", "message": "Error: ErrImagePull",
               "lastTimestamp": "2026-01-02T03:04:08Z"}]
    snap = pod_snapshot(pod(state={"waiting": {"reason": "ImagePullBackOff", "message": " Back-off "}}),
                        container="runner", events=events)
    assert snap.image_pull_error and not snap.container_config_error
    assert snap.waiting_reason == "ImagePullBackOff" and snap.container.waiting_message == "Back-off"
    assert snap.image == "img:1" and snap.failed_event == "Error: ErrImagePull"
    assert snap.warnings == ("Failed: pull: connection refused", "Failed: Error: ErrImagePull")
    assert snap.never_started is False  # the side container runs


def test_terminated_exit_code_signal_and_message():
    snap = pod_snapshot(pod("Failed", {"terminated": {"reason": "OOMKilled", "exitCode": 137, "signal": 9,
                                                      "message": " summary\n"}}), container="runner")
    c = snap.container
    assert c.terminated and c.exit_code == 137 and c.signal == 9 and c.terminated_reason == "OOMKilled"
    assert c.terminated_message == "summary" and snap.phase == "Failed"


def test_unschedulable_and_deleting_and_pod_reason():
    snap = pod_snapshot(pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                         "message": "0/1 nodes: Insufficient cpu."}], deleting=True,
                            status_extra={"reason": "Evicted", "message": "low on memory"}))
    assert snap.unschedulable_message == "0/1 nodes: Insufficient cpu." and snap.unschedulable_reason == "Unschedulable"
    assert snap.deleting and snap.reason == "Evicted" and snap.message == "low on memory"
    assert snap.container.name == "side"  # no container named: the first


def test_never_started_only_while_pending_without_any_run():
    fresh = {"metadata": {"name": "w"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "worker", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert pod_snapshot(fresh).never_started
    restarted = {"metadata": {"name": "w"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "worker", "state": {"waiting": {}}, "lastState": {"terminated": {"exitCode": 1}}}]}}
    assert not pod_snapshot(restarted).never_started
    assert pod_snapshot({"metadata": {"name": "bare"}}).never_started  # no status yet


def test_created_text_matches_the_client_models_str():
    assert created_text(pod()) == "2026-01-02 03:04:05+00:00"
    assert created_text({"metadata": {}}) is None
