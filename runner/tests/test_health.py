"""Worker pod classification and the health policy (pure functions over fake pod dicts)."""

from __future__ import annotations

from dok.runner.health import Fatal, HealthPolicy, Replace, WorkerObservation, observe_pod


def pod(name="w-0", phase="Pending", *, waiting=None, running=False, terminated=None, conditions=(),
        deleting=False, reason=None, message=None):
    state = {}
    if waiting:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    if running:
        state["running"] = {"startedAt": "2026-11-27T10:00:00Z"}
    if terminated:
        state["terminated"] = terminated
    status = {"phase": phase, "conditions": list(conditions)}
    if state:
        status["containerStatuses"] = [{"name": "worker", "state": state}]
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    meta = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T10:00:00Z"
    return {"metadata": meta, "status": status}


def test_observe_running_pending_exited():
    assert observe_pod(pod(phase="Running", running=True)).phase == "running"
    assert observe_pod(pod(waiting=("ContainerCreating", ""))).phase == "pending"
    assert observe_pod(pod(waiting=("ContainerCreating", ""))).problem.reason == "ContainerCreating"
    assert observe_pod(pod()).problem is None
    assert observe_pod(pod(phase="Succeeded", terminated={"exitCode": 0, "reason": "Completed"})).phase == "exited"
    assert observe_pod(pod(phase="Running", running=True, deleting=True)).phase == "deleting"


def test_observe_image_pull_problems():
    o = observe_pod(pod(waiting=("ErrImagePull", 'rpc error: pull access denied for nope/nope')))
    assert o.phase == "pending" and o.problem.reason == "ErrImagePull" and "pull access denied" in o.problem.message
    assert not o.problem.permanent
    assert observe_pod(pod(waiting=("ImagePullBackOff", "Back-off pulling image"))).problem.reason == "ImagePullBackOff"
    assert observe_pod(pod(waiting=("InvalidImageName", "bad ref"))).problem.permanent


def test_observe_unschedulable():
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient cpu."}
    o = observe_pod(pod(conditions=[cond]))
    assert o.problem.reason == "Unschedulable" and "Insufficient cpu" in o.problem.message


def test_observe_failed_container_and_eviction():
    o = observe_pod(pod(phase="Failed", terminated={"exitCode": 137, "reason": "OOMKilled"}))
    assert o.phase == "failed" and o.exit_code == 137 and o.problem.reason == "OOMKilled"
    # Container already terminated with an error while the pod phase still says Running.
    o = observe_pod(pod(phase="Running", terminated={"exitCode": 1, "reason": "Error", "message": "ImportError: x"}))
    assert o.phase == "failed" and "ImportError" in o.problem.message
    o = observe_pod(pod(phase="Failed", reason="Evicted", message="The node was low on memory."))
    assert o.phase == "failed" and o.problem.reason == "Evicted"


def policy(**kw):
    return HealthPolicy(start_timeout=kw.pop("start_timeout", 30), failure_budget=kw.pop("budget", 2),
                        scheduler_address="tcp://10.0.0.1:8786")


def test_pending_within_timeout_is_fine_then_fatal_naming_reason():
    obs = [observe_pod(pod("w-1", waiting=("ImagePullBackOff", "Back-off pulling image \"nope:1\"")))]
    p = policy(start_timeout=30)
    assert p.decide(obs, expected={"w-1": 100.0}, joined=set(), now=120.0) == []
    [d] = p.decide(obs, expected={"w-1": 100.0}, joined=set(), now=131.0)
    assert isinstance(d, Fatal)
    text = str(d.error)
    assert "w-1" in text and "ImagePullBackOff" in text and "nope:1" in text and "30s" in text
    assert d.error.exit_code == 3


def test_unschedulable_after_timeout():
    cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory."}
    [d] = policy(start_timeout=5).decide([observe_pod(pod("w-2", conditions=[cond]))],
                                         expected={"w-2": 0.0}, joined=set(), now=6.0)
    assert isinstance(d, Fatal) and "Insufficient memory" in str(d.error) and "DOK_WORKER_RESOURCES" in str(d.error)


def test_permanent_problem_is_fatal_at_once():
    [d] = policy().decide([observe_pod(pod("w-3", waiting=("InvalidImageName", "bad")))],
                          expected={"w-3": 0.0}, joined=set(), now=0.5)
    assert isinstance(d, Fatal)


def test_stuck_without_reason_is_fatal_after_timeout():
    [d] = policy(start_timeout=10).decide([observe_pod(pod("w-4"))], expected={"w-4": 0.0}, joined=set(), now=11)
    assert isinstance(d, Fatal) and "still Pending" in str(d.error)


def test_running_but_never_joined():
    obs = [observe_pod(pod("w-5", phase="Running", running=True))]
    assert policy(start_timeout=10).decide(obs, expected={"w-5": 0.0}, joined=set(), now=5) == []
    [d] = policy(start_timeout=10).decide(obs, expected={"w-5": 0.0}, joined=set(), now=11)
    assert isinstance(d, Fatal) and "did not join the scheduler at tcp://10.0.0.1:8786" in str(d.error)
    assert policy(start_timeout=10).decide(obs, expected={"w-5": 0.0}, joined={"w-5"}, now=99) == []


def test_crash_before_joining_is_fatal_with_log_wanted():
    obs = [observe_pod(pod("w-6", phase="Failed", terminated={"exitCode": 1, "reason": "Error"}))]
    [d] = policy().decide(obs, expected={"w-6": 0.0}, joined=set(), now=1)
    assert isinstance(d, Fatal) and d.wants_log and "failed before joining" in str(d.error)


def test_deleted_or_vanished_or_exited_worker_is_replaced_not_fatal():
    p = policy()
    obs = [observe_pod(pod("a", phase="Running", running=True, deleting=True)),
           observe_pod(pod("b", phase="Succeeded", terminated={"exitCode": 0}))]
    decisions = p.decide(obs, expected={"a": 0.0, "b": 0.0, "c": 0.0, "d": 9.5}, joined={"a", "b", "c"}, now=10.0)
    assert {(type(d), d.name) for d in decisions} == {(Replace, "a"), (Replace, "b"), (Replace, "c")}


def test_crashes_after_joining_are_replaced_until_the_budget_is_spent():
    p = policy(budget=2)
    crashed = lambda n: observe_pod(pod(n, phase="Failed", terminated={"exitCode": 137, "reason": "OOMKilled"}))
    for n in ("x1", "x2"):
        [d] = p.decide([crashed(n)], expected={n: 0.0}, joined={n}, now=1)
        assert isinstance(d, Replace) and d.crashed
    [d] = p.decide([crashed("x3")], expected={"x3": 0.0}, joined={"x3"}, now=1)
    assert isinstance(d, Fatal) and "keep failing" in str(d.error) and "OOMKilled" in str(d.error)


def test_pods_not_expected_are_ignored():
    obs = [WorkerObservation(name="old", phase="failed")]
    assert policy().decide(obs, expected={}, joined=set(), now=100) == []
