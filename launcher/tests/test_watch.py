"""The job-pod watch policy, pure: views made by hand, time given as numbers — no cluster, no sleeping."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakekube import ID, failed_condition, job, pod  # noqa: E402

from dok.core import Success, encode_summary  # noqa: E402
from dok.kube import pod_snapshot  # noqa: E402
from dok.launcher.exceptions import ConfigError, ImagePullError, InfrastructureError, PodLost, WaitTimeout  # noqa: E402
from dok.launcher.watch import RunView, WaitOptions, WatchPolicy, job_view  # noqa: E402

OPTIONS = WaitOptions(image_pull_grace=15.0, config_error_grace=10.0, unschedulable_timeout=120.0,
                      pod_create_timeout=30.0)


def policy(**kw):
    return WatchPolicy(identifier=ID, options=OPTIONS, start=0.0, **kw)


def view(*job_pods, jobs=(job(),), workers=(), events=None, **kw):
    snaps = tuple(pod_snapshot(p, container="runner", events=events or ()) for p in job_pods)
    return RunView(jobs=tuple(job_view(j) for j in jobs), job_pods=snaps,
                   workers=tuple(pod_snapshot(w) for w in workers), **kw)


def test_err_image_pull_gets_its_grace_then_names_the_registry_error():
    p, pulling = policy(), pod("p", waiting=("ErrImagePull", "dial tcp 127.0.0.1:1: connection refused"))
    assert p.decide(view(pulling), 1.0).error is None
    assert p.decide(view(pulling), 15.0).error is None
    backoff = pod("p", waiting=("ImagePullBackOff", 'Back-off pulling image "img:1"'))
    error = p.decide(view(backoff), 16.5).error  # BackOff fails at once, with the ErrImagePull text seen before
    assert isinstance(error, ImagePullError) and "connection refused" in error.message and "img:1" in error.message


def test_pull_error_detail_falls_back_to_the_kubelet_event():
    events = [{"type": "Warning", "reason": "Failed", "message": "manifest unknown", "lastTimestamp": "t1"}]
    error = policy().decide(view(pod("p", waiting=("ImagePullBackOff", "Back-off")), events=events), 0.0).error
    assert isinstance(error, ImagePullError) and error.message.endswith("ImagePullBackOff: manifest unknown")


def test_unschedulable_is_bounded_and_resets_once_scheduled():
    p = policy()
    stuck = pod("p", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")
    assert p.decide(view(stuck), 10.0).error is None
    assert p.decide(view(pod("p")), 100.0).error is None          # scheduled meanwhile: the clock restarts
    assert p.decide(view(stuck), 200.0).error is None
    error = p.decide(view(stuck), 321.0).error
    assert isinstance(error, InfrastructureError) and "Insufficient cpu" in error.message


def test_missing_secret_is_a_config_error_after_its_grace():
    p, waiting = policy(), pod("p", waiting=("CreateContainerConfigError", 'secret "db" not found'))
    assert p.decide(view(waiting), 0.0).error is None
    error = p.decide(view(waiting), 10.5).error
    assert isinstance(error, ConfigError) and 'secret "db" not found' in error.message


def test_job_without_pod_is_explained_by_its_events_after_the_timeout():
    p = policy()
    warnings = ("FailedCreate: serviceaccount \"dok-runner\" not found",)
    assert p.decide(view(job_events=warnings), 29.0).error is None
    error = p.decide(view(job_events=warnings), 31.0).error
    assert isinstance(error, InfrastructureError) and "has no pod after 30 s" in error.message
    assert 'serviceaccount "dok-runner" not found' in error.message
    failed = p.decide(view(jobs=(job(conditions=[failed_condition()]),)), 1.0).error
    assert "failed before its pod ran: DeadlineExceeded" in failed.message


def test_final_state_and_runner_exit_code():
    st = Success(message="ok", result={"total": 6}, start=1.0, end=2.0)
    ended = pod("p", phase="Succeeded", terminated={"message": encode_summary(st), "exit_code": 0})
    decision = policy().decide(view(ended), 5.0)
    assert decision.done and decision.error is None and decision.state.is_successful()
    assert decision.runner_exit_code == 0


def test_ended_without_state_quotes_the_log():
    killed = pod("p", phase="Failed", terminated={"reason": "OOMKilled", "exit_code": 137, "signal": 9})
    decision = policy().decide(view(killed, log_tail="line 1\nline 2\n"), 5.0)
    assert isinstance(decision.error, PodLost) and decision.runner_exit_code == 137
    assert "OOMKilled, exit code 137, signal 9" in decision.error.message
    assert "last log lines: line 1 | line 2" in decision.error.message
    followed = policy().decide(view(killed, log_lines=("a", "b"), log_tail="unused"), 5.0).error
    assert followed.message.endswith("last log lines: a | b")
    assert "cause: OOMKilled: over its memory limit" in followed.message  # named, with what to do


def test_job_pod_preempted_or_evicted_is_named():
    p = policy()
    assert p.decide(view(pod("p", phase="Running")), 1.0).error is None
    preempted = pod("p", phase="Running", deleting=True)
    preempted["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                              "reason": "PreemptionByScheduler", "message": "by pod vip-0"})
    error = p.decide(view(preempted), 2.0).error
    assert isinstance(error, PodLost) and "cause: Preempted: by pod vip-0" in error.message
    evicted = pod("p", phase="Failed")
    evicted["status"].update(reason="Evicted", message="The node was low on resource: memory.")
    evicted["status"]["containerStatuses"] = []
    error = policy().decide(view(evicted), 2.0).error
    assert isinstance(error, PodLost) and "cause: Evicted: The node was low on resource: memory." in error.message


def test_pod_deleted_by_someone_names_the_job_failure():
    p = policy()
    p.decide(view(pod("p", phase="Running")), 1.0)
    error = p.decide(view(jobs=(job(conditions=[failed_condition()]),)), 2.0).error
    assert isinstance(error, PodLost) and "was deleted before the flow finished" in error.message
    assert "the Job failed: DeadlineExceeded" in error.message


def test_cancelling_tolerates_the_deleting_pod_and_ends_when_the_job_is_gone():
    p = policy(cancelling=True)
    assert p.decide(view(pod("p", phase="Running", deleting=True)), 1.0).error is None
    p2 = policy(cancelling=True)
    assert p2.decide(view(jobs=()), 1.0).error.message == f"run {ID} was cancelled"
    error = policy().decide(view(pod("p", phase="Running", deleting=True)), 1.0).error
    assert isinstance(error, PodLost) and "not by this dok run" in error.message


def test_reports_workers_on_change_and_follows_the_log_once():
    p = policy()
    running = pod("p", phase="Running")
    w = pod("w1", component="worker", phase="Running")
    first = p.decide(view(running, workers=(w,)), 1.0)
    assert first.say == ("[dok] workers: 1 running, 0 starting/stopping", "[dok] job pod p", "[dok] job pod p is Running")
    assert first.follow == "p"
    again = p.decide(view(running, workers=(w,)), 2.0)
    assert again.say == () and again.follow is None
    quiet = policy(stream_logs=False).decide(view(running, workers=(w,)), 1.0)
    assert quiet.say == () and quiet.follow is None


def test_timeout():
    error = policy(timeout=60.0).decide(view(pod("p", phase="Running")), 61.0).error
    assert isinstance(error, WaitTimeout) and "did not finish within 60 s" in error.message
