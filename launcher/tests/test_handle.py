"""RunHandle.wait against a scripted fake cluster: the final State from the termination message, and
every platform failure as a named InfrastructureError (never a hang); cleanup by label."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakekube import ID, FakeKube, failed_condition, job, pod  # noqa: E402

from dok.core import Failed, Success, encode_summary  # noqa: E402
from dok.launcher.exceptions import (ConfigError, ImagePullError, InfrastructureError, PodLost,  # noqa: E402
                                     RunNotFound, WaitTimeout)
from dok.launcher.handle import RunHandle, WaitOptions  # noqa: E402

FAST = WaitOptions(poll_interval=0.001, image_pull_grace=0.0, config_error_grace=0.0, unschedulable_timeout=0.0,
                   pod_create_timeout=0.0, cleanup_timeout=1.0)


def handle(kube, lines=None):
    sink = lines if lines is not None else []
    h = RunHandle(kube=kube, identifier=ID, namespace="ns", job_name="dok-f-0f8fad5b", flow_name="f")
    return h, sink


def wait(kube, **kw):
    h, sink = handle(kube)
    return h.wait(options=FAST, on_line=sink.append, **kw), sink, h


def ok_message():
    st = Success(message="all 2 task(s) succeeded", result={"total": 6},
                 task_states={"a": Success(), "b": Success()}, start=1.0, end=2.5)
    return encode_summary(st)


def _three_polls():
    return FakeKube([
        ([job()], [pod("p", phase="Pending")]),
        ([job()], [pod("p", phase="Running"), pod("w1", component="worker", phase="Running")]),
        ([job()], [pod("p", phase="Succeeded", terminated={"message": ok_message()})]),
    ])


def test_finished_run_is_kept_until_its_ttl_by_default():
    kube = _three_polls()
    state, _, _ = wait(kube)
    assert state.is_successful()
    assert not kube.deleted_jobs and not kube.cleaned  # the Job and job pod stay for logs/status (TTL)


def test_success_state_decoded_and_cleaned_up():
    kube = _three_polls()
    state, lines, h = wait(kube, cleanup=True)  # `dok run --rm`
    assert state.is_successful()
    assert "total" in str(state.result)
    assert kube.deleted_jobs and kube.cleaned  # cleaned up
    assert any("workers: 1 running" in line for line in lines)
    assert any(line == "[job] hello from the runner" for line in lines)


def test_failed_flow_state_has_task_error():
    st = Failed(message="1 task(s) failed: explode", task_states={
        "explode": Failed(message="ValueError: boom", exc_type="ValueError", exc_message="boom")})
    kube = FakeKube([([job()], [pod("p", phase="Failed", terminated={"message": encode_summary(st),
                                                                       "exit_code": 1, "reason": "Error"})])])
    state, _, _ = wait(kube)
    assert state.is_failed()
    assert "explode" in state.task_states


def test_image_pull_backoff_is_infra_error():
    kube = FakeKube([([job()], [pod("p", waiting=("ImagePullBackOff", 'Back-off pulling image "nope:1"'))])])
    with pytest.raises(ImagePullError) as info:
        wait(kube)
    assert info.value.exit_code == 3
    assert "nope:1" in info.value.message and "ImagePullBackOff" in info.value.message
    assert kube.cleaned  # nothing left behind


def test_err_image_pull_waits_for_grace():
    kube = FakeKube([([job()], [pod("p", waiting=("ErrImagePull", "not found"))])])
    h, sink = handle(kube)
    opts = WaitOptions(poll_interval=0.001, image_pull_grace=0.05)
    with pytest.raises(ImagePullError):
        h.wait(options=opts, on_line=sink.append)
    assert kube.polls > 2


def test_missing_secret_is_config_error():
    kube = FakeKube([([job()], [pod("p", waiting=("CreateContainerConfigError", 'secret "db" not found'))])])
    with pytest.raises(ConfigError, match='secret "db" not found'):
        wait(kube)


def test_unschedulable_is_bounded():
    kube = FakeKube([([job()], [pod("p", unschedulable="0/1 nodes are available: 1 Insufficient cpu.")])])
    with pytest.raises(InfrastructureError, match="Insufficient cpu"):
        wait(kube)


def test_job_pod_deleted_by_hand():
    kube = FakeKube([([job()], [pod("p", phase="Running")]), ([job()], [])])
    with pytest.raises(PodLost, match="deleted") as info:
        wait(kube)
    assert info.value.exit_code == 3


def test_job_pod_terminating_not_by_us():
    kube = FakeKube([([job()], [pod("p", phase="Running")]), ([job()], [pod("p", phase="Running", deleting=True)])])
    with pytest.raises(PodLost, match="being deleted"):
        wait(kube)


def test_pod_killed_without_state():
    kube = FakeKube([([job()], [pod("p", phase="Failed", terminated={"reason": "OOMKilled", "exit_code": 137})])])
    with pytest.raises(PodLost, match="OOMKilled, exit code 137"):
        wait(kube)


def test_no_pod_reports_job_events():
    kube = FakeKube([([job()], [])])
    with pytest.raises(InfrastructureError, match='serviceaccount "dok-runner" not found'):
        wait(kube)


def test_job_deleted_before_pod():
    kube = FakeKube([([], [])])
    with pytest.raises(PodLost):
        wait(kube)


def test_timeout():
    kube = FakeKube([([job()], [pod("p", phase="Running")])])
    h, sink = handle(kube)
    with pytest.raises(WaitTimeout):
        h.wait(options=WaitOptions(poll_interval=0.001), timeout=0.05, on_line=sink.append, stream_logs=False)


def test_attach_unknown_identifier():
    with pytest.raises(RunNotFound, match="dok list"):
        RunHandle.attach("nope", kube=FakeKube([([], [])]), namespace="ns")


def test_status_shows_state_and_workers():
    kube = FakeKube([([job()], [pod("p", phase="Succeeded", terminated={"message": ok_message()}),
                                pod("w1", component="worker", phase="Running")])])
    h = RunHandle.attach(ID, kube=kube, namespace="ns")
    st = h.status()
    assert st.phase == "Succeeded" and st.workers == {"Running": 1} and st.state.is_successful()


def test_cancel_deletes_pod_and_job():
    kube = FakeKube([([job()], [pod("p", phase="Running")])])
    h, _ = handle(kube)
    h.cancel()
    assert kube.deleted_jobs == ["dok-f-0f8fad5b"]  # the Job first (no replacement pod), then its pods


def test_cleanup_reports_leftovers():
    class Sticky(FakeKube):
        def delete_pod(self, *a, **k):
            self.deleted_pods.append(a[1])

        def delete_job(self, *a, **k):
            self.deleted_jobs.append(a[1])

    kube = Sticky([([job()], [pod("p", phase="Running", deleting=True)])])
    h, _ = handle(kube)
    remaining = h.cleanup(timeout=0.05)
    assert remaining == ["Job/dok-f-0f8fad5b", "pod/p"]


def test_cleanup_forces_a_pod_stuck_terminating_once():
    class Stuck(FakeKube):
        def __init__(self, script):
            super().__init__(script)
            self.graces = []

        def delete_pod(self, namespace, name, grace_period_seconds=None):
            self.graces.append((name, grace_period_seconds))
            return True

    kube = Stuck([([], [pod("w1", component="worker", phase="Running", deleting=True)])])
    h, _ = handle(kube)
    assert h.cleanup(timeout=1.6, stuck_after=0.05) == ["pod/w1"]  # the fake never lets it go (sweeps every 0.5 s)
    assert kube.graces == [("w1", 0)]  # not deleted again at first (it is terminating), then forced once
    patient = Stuck([([], [pod("w1", component="worker", phase="Running", deleting=True)])])
    h2, _ = handle(patient)
    h2.cleanup(timeout=1.1, stuck_after=60.0)
    assert patient.graces == []


def test_cleanup_deletes_the_runs_dask_custom_resources():
    """Backend "operator": an orphaned DaskWorkerGroup of the run is deleted by label; without the CRDs
    (NotFound) the sweep is a no-op."""
    from dok.kube import NotFound

    class WithDask(FakeKube):
        def __init__(self, script):
            super().__init__(script)
            self.groups = [{"metadata": {"name": "dok-x-default"}}]
            self.deleted_custom = []

        def list_custom(self, group, version, plural, namespace, selector):
            assert selector == h.selector
            if plural == "daskclusters":
                raise NotFound("no such resource")
            return list(self.groups)

        def delete_custom(self, group, version, plural, namespace, name):
            self.deleted_custom.append((group, plural, name))
            self.groups = []
            return True

    kube = WithDask([([], [])])
    h, _ = handle(kube)
    assert h.cleanup(timeout=5) == []
    assert kube.deleted_custom == [("kubernetes.dask.org", "daskworkergroups", "dok-x-default")]


def test_evicted_pod_without_container_state():
    p = pod("p", phase="Failed")
    p["status"].update(containerStatuses=[], reason="Evicted", message="The node was low on resource: memory.")
    kube = FakeKube([([job()], [p])])
    with pytest.raises(PodLost, match="Evicted.*low on resource"):
        wait(kube)


def test_api_server_blip_is_retried():
    from dok.launcher.exceptions import ClusterUnreachable

    class Flaky(FakeKube):
        def list_pods(self, namespace, selector):
            if 1 <= self.polls < 4:
                self.polls += 1
                raise ClusterUnreachable("cluster unreachable at https://fake:6443 (connection refused)")
            return super().list_pods(namespace, selector)

    kube = Flaky([([job()], [pod("p", phase="Running")]),
                  ([job()], [pod("p", phase="Succeeded", terminated={"message": ok_message()})])])
    state, lines, _ = wait(kube)
    assert state.is_successful()
    assert any("API server unavailable" in line for line in lines)


def test_api_server_down_too_long_fails():
    from dok.launcher.exceptions import ClusterUnreachable

    class Down(FakeKube):
        def list_pods(self, namespace, selector):
            raise ClusterUnreachable("cluster unreachable at https://fake:6443 (connection refused)")

    h, sink = handle(Down([([job()], [])]))
    with pytest.raises(ClusterUnreachable):
        h.wait(options=WaitOptions(poll_interval=0.001, api_retry_window=0.05), on_line=sink.append, cleanup=False)


def test_deadline_exceeded_is_explained():
    failed = job(conditions=[failed_condition()])
    kube = FakeKube([([job()], [pod("p", phase="Running")]), ([failed], [pod("p", phase="Running", deleting=True)])])
    with pytest.raises(PodLost, match="DeadlineExceeded"):
        wait(kube)


def test_pull_error_keeps_the_registry_message():
    kube = FakeKube([([job()], [pod("p", waiting=("ErrImagePull", "dial tcp 127.0.0.1:1: connection refused"))]),
                     ([job()], [pod("p", waiting=("ImagePullBackOff", 'Back-off pulling image "x"'))])])
    h, sink = handle(kube)
    with pytest.raises(ImagePullError, match="connection refused"):
        h.wait(options=WaitOptions(poll_interval=0.001, image_pull_grace=60), on_line=sink.append)


def test_runner_infrastructure_exit_code_recorded():
    st = Failed(message="infrastructure error: the bundle's sha256 is x, expected y")
    kube = FakeKube([([job()], [pod("p", phase="Failed", terminated={"message": encode_summary(st),
                                                                       "exit_code": 3, "reason": "Error"})])])
    state, _, h = wait(kube)
    assert state.is_failed() and h.runner_exit_code == 3


def test_status_shows_job_failure_reason():
    failed = job(conditions=[failed_condition()])
    h = RunHandle.attach(ID, kube=FakeKube([([failed], [])]), namespace="ns")
    st = h.status()
    assert st.phase == "Failed" and "DeadlineExceeded" in st.job_reason


def test_copied_worker_lines_are_shown_only_when_asked():
    from dok.launcher.handle import _without_worker_lines

    seen: list[str] = []
    job_only = _without_worker_lines(seen.append)
    for line in ["[dok 1.0s] scaling: ...", "[worker w-1] printed by a task", "task inc[0]: SUCCESS"]:
        job_only(line)
    assert seen == ["[dok 1.0s] scaling: ...", "task inc[0]: SUCCESS"]


def test_progress_records_are_hidden_from_plain_output():
    from dok.launcher.handle import _without_progress_records

    seen: list[str] = []
    plain = _without_progress_records(seen.append)
    for line in ['[dok-progress] {"t":1}', "[dok 1.0s] scaling: ...", '[dok 2.0s] [dok-progress] {"t":2}']:
        plain(line)
    assert seen == ["[dok 1.0s] scaling: ..."]


class _PickedUp:
    """A pick-up that already holds the runner's payload (see dok.launcher.results.ResultPickup)."""

    def __init__(self, state, exit_code):
        from dok.core.results import decode_payload, encode_payload

        self.payload = decode_payload(encode_payload(state, identifier=ID, exit_code=exit_code))
        self.error = None

    def arrived(self, timeout):
        return True

    def result(self, timeout):
        return self.payload

    def stop(self):
        pass


def test_the_picked_up_outcome_ends_the_wait_before_the_container_is_seen_ending():
    full = Success(message="all 1 task(s) succeeded", result={"total": 12502500},
                   task_states={"total": Success(result=12502500)})
    kube = FakeKube([([job()], [pod("p", phase="Running")])])  # the kubelet has not reported the end yet
    kube.log_lines = ["task total: SUCCESS", f"run {ID} finished: SUCCESS (exit code 0); workers: …"]
    h, lines = handle(kube)
    h._start_pickup = lambda: _PickedUp(full, 0)
    state = h.wait(options=FAST, on_line=lines.append)
    assert state.result == {"total": 12502500} and h.full_results and h.runner_exit_code == 0
    assert lines[-1].startswith(f"[job] run {ID} finished: SUCCESS")  # the runner's last line was awaited
    failed = Failed(message="infrastructure error: workers cannot start")
    kube2 = FakeKube([([job()], [pod("p", phase="Running")])])
    kube2.log_lines = ["cannot start workers", f"run {ID} finished: FAILED (exit code 3); workers: …"]
    h2, lines2 = handle(kube2)
    h2._start_pickup = lambda: _PickedUp(failed, 3)
    assert h2.wait(options=FAST, on_line=lines2.append).is_failed() and h2.runner_exit_code == 3
    assert lines2[-1].startswith(f"[job] run {ID} finished: FAILED")  # a failure's last lines are awaited


def test_whole_log_reads_the_log_of_a_run_that_ended_before_it_could_be_followed():
    full = Success(message="all 1 task(s) succeeded", result={"answer": 42}, task_states={"answer": Success(result=42)})

    class NotYet(FakeKube):
        def __init__(self, script):
            super().__init__(script)
            self.asked = 0

        def pod_log(self, namespace, name, container=None, tail_lines=None, quick=False):
            self.asked += 1
            if self.asked == 1:
                raise InfrastructureError("container 'runner' is waiting to start: ContainerCreating")
            return "run abc: flow 'f'\ntask answer: SUCCESS\n[dok-progress] {}\n"

    kube = NotYet([([job()], [pod("p", phase="Pending")])])  # the kubelet has not reported it yet
    h, lines = handle(kube)
    h._start_pickup = lambda: _PickedUp(full, 0)
    state = h.wait(options=FAST, on_line=lines.append, whole_log=True)
    assert state.result == {"answer": 42} and kube.asked == 2
    assert "[job] task answer: SUCCESS" in lines
    quiet_kube = NotYet([([job()], [pod("p", phase="Pending")])])
    h2, lines2 = handle(quiet_kube)
    h2._start_pickup = lambda: _PickedUp(full, 0)
    assert h2.wait(options=FAST, on_line=lines2.append).result == {"answer": 42}
    assert quiet_kube.asked == 0  # the library's default: the State at once, no catch-up
