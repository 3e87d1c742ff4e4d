"""The final State names worker pods that ended early and why; the health watch records the cause."""

from __future__ import annotations

from dok.core import encode_summary
from dok.core.states import Failed, Success
from dok.runner.causes import EARLY_END_PREFIX, causes_text, with_causes
from dok.runner.health import HealthPolicy, Replace, observe_pod
from dok.runner.monitor import RunMonitor


def test_failed_state_names_the_oom_killed_worker():
    state = Failed(message="1 task failed (first: KilledWorker: ...)")
    out = with_causes(state, {"run-worker-1": "OOMKilled: over its memory limit (exit code 137)"})
    assert isinstance(out, Failed)
    first, rest = out.message.split("\n", 1)
    assert first.startswith(EARLY_END_PREFIX) and "run-worker-1: OOMKilled" in first
    assert rest == state.message
    long = with_causes(Failed(message="x" * 5000), {"w": "OOMKilled"})
    assert encode_summary(long).find("w: OOMKilled") > 0  # kept when a long message is cut in the summary
    assert with_causes(out, {"run-worker-1": "OOMKilled: over its memory limit (exit code 137)"}) == out


def test_no_early_end_leaves_the_state_alone():
    state = Success(message="all 3 task(s) succeeded")
    assert with_causes(state, {}) is state
    assert causes_text({}) == ""


def test_many_pods_are_bounded():
    text = causes_text({f"w-{i}": "Deleted" for i in range(25)})
    assert text.startswith(EARLY_END_PREFIX) and "and 15 more" in text and "w-10" not in text


def _oom_pod(name):
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "worker", "image": "i"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "worker", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}


def test_health_watch_carries_the_cause_to_the_monitor():
    obs = observe_pod(_oom_pod("w-1"))
    assert obs.cause is not None and obs.cause.startswith("OOMKilled")
    policy = HealthPolicy(start_timeout=60, failure_budget=3)
    [decision] = policy.decide([obs], expected={"w-1": 0.0}, joined={"w-1"}, now=10.0)
    assert isinstance(decision, Replace) and decision.cause.startswith("OOMKilled")
    monitor = RunMonitor(stream=open("/dev/null", "w"))
    monitor.ended_early_because("w-1", decision.cause)
    assert list(monitor.ended_early()) == ["w-1"]
    gone = policy.decide([], expected={"w-2": 0.0}, joined={"w-2"}, now=10.0)
    assert gone[0].cause.startswith("Deleted")
