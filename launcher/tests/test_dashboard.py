"""`dok dashboard ID` and `dok run --dashboard`: parsing, which job pod is forwarded (finished / not started /
unknown runs are clear errors, exit 2), the URL as the first stdout line, RBAC refused before any port opens,
and the run-time forward saying the link once the dashboard answers (a fake Kubernetes with fake streams)."""

from __future__ import annotations

import argparse
import io
import socket
import time
from typing import Any

import pytest

from dok.core.names import DASHBOARD_PORT
from dok.kube import Forbidden
from dok.launcher import dashboard
from dok.launcher.cli import build_parser, main
from dok.launcher.exceptions import RunFinished, RunNotFound, RunNotRunning, UsageError
from kube_fakes import FakeStream, http_server

IDENT = "0b5e2c1e-1111-4222-8333-444455556666"


def job_pod(name: str = "run-job-abc", phase: str = "Running", *, terminated: str | None = None,
            deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                            "labels": {"dok.dev/identifier": IDENT, "app.kubernetes.io/component": "job"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    state = {"terminated": {"reason": terminated, "exitCode": 0}} if terminated else {"running": {}}
    return {"metadata": meta, "status": {"phase": phase,
                                         "containerStatuses": [{"name": "runner", "state": state}]}}


def job(phase: str = "Running") -> dict[str, Any]:
    status: dict[str, Any] = {"active": 1} if phase == "Running" else {
        "conditions": [{"type": "Complete" if phase == "Succeeded" else "Failed", "status": "True"}]}
    return {"metadata": {"name": "run-job", "labels": {"dok.dev/identifier": IDENT}}, "status": status}


class FakeKube:
    """Jobs/pods of one run; `reads` is what successive reads of the job pod return (the last one repeats)."""

    def __init__(self, *, jobs: list[dict], pods: list[dict], reads: list[dict | None] | None = None,
                 allowed: bool = True) -> None:
        self.jobs, self.pods, self.reads, self.allowed = jobs, pods, list(reads or pods[-1:]), allowed
        self.n_reads = 0
        self.access_checked: list[Any] = []
        self.streams = 0

    def list_jobs(self, namespace: str, selector: str) -> list[dict]:
        return list(self.jobs)

    def list_pods(self, namespace: str, selector: str) -> list[dict]:
        return list(self.pods)

    def read(self, kind: str, namespace: str, name: str) -> dict | None:
        value = self.reads[min(self.n_reads, len(self.reads) - 1)]
        self.n_reads += 1
        return value

    def can_i(self, access: Any) -> tuple[bool, str]:
        self.access_checked.append(access)
        return self.allowed, "" if self.allowed else "RBAC: no rule"

    def open_port_forward(self, namespace: str, pod: str, port: int) -> FakeStream:
        self.streams += 1
        return FakeStream(http_server, port=DASHBOARD_PORT)


def args_for(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["dashboard", *argv])


# -- parsing ---------------------------------------------------------------------------------------------------
def test_dashboard_command_parses_the_id_and_port() -> None:
    args = args_for(IDENT, "--port", "9000", "-n", "ns")
    assert (args.command, args.identifier, args.port, args.namespace) == ("dashboard", IDENT, 9000, "ns")
    assert args_for(IDENT).port is None  # DASHBOARD_PORT when free, else any free port


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_a_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        args_for(IDENT, "--port", port)
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [(["--detach"], "cannot be used with --detach"),
                                            (["--local"], "--local runs have none")])
def test_run_dashboard_refuses_detach_and_local_before_anything(extra: list[str], message: str) -> None:
    err = io.StringIO()
    code = main(["run", "no-such-file.py", "--dashboard", *extra], out=io.StringIO(), err=err)
    assert code == 2
    assert message in err.getvalue()


def test_run_dashboard_and_no_dashboard_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["run", "f.py", "--dashboard", "--no-dashboard"])
    assert info.value.code == 2
    args = build_parser().parse_args(["run", "f.py", "--no-dashboard"])
    assert args.no_dashboard and not args.dashboard


def test_bad_identifier_is_refused_before_connecting() -> None:
    err = io.StringIO()
    assert main(["dashboard", "Not An Id!"], out=io.StringIO(), err=err) == 2
    assert "identifier" in err.getvalue()


# -- which pod --------------------------------------------------------------------------------------------------
def test_the_newest_running_job_pod_is_forwarded() -> None:
    pods = [job_pod("old", "Failed", terminated="Error"), job_pod("new")]
    assert dashboard.job_pod_to_forward(pods, identifier=IDENT, job_phase="Running") == "new"


@pytest.mark.parametrize("pods, phase", [
    ([job_pod(phase="Succeeded", terminated="Completed")], "Succeeded"),
    ([job_pod(phase="Running", terminated="Completed")], "Running"),   # container ended, pod not updated yet
    ([job_pod(deleting=True)], "Running"),
    ([], "Succeeded"),                                                # pod gone, Job kept
    ([], "Failed"),
])
def test_a_finished_run_is_a_clear_error(pods: list[dict], phase: str) -> None:
    with pytest.raises(RunFinished) as info:
        dashboard.job_pod_to_forward(pods, identifier=IDENT, job_phase=phase)
    assert info.value.exit_code == 2
    assert f"run {IDENT} has finished" in info.value.message and "dok status" in (info.value.hint or "")


@pytest.mark.parametrize("pods", [[job_pod(phase="Pending")], []])
def test_a_run_not_running_yet_is_a_clear_error(pods: list[dict]) -> None:
    with pytest.raises(RunNotRunning) as info:
        dashboard.job_pod_to_forward(pods, identifier=IDENT, job_phase="Pending")
    assert info.value.exit_code == 2 and "retry" in (info.value.hint or "")


def test_dashboard_url() -> None:
    assert dashboard.dashboard_url(8787) == "http://127.0.0.1:8787/status"
    assert dashboard.dashboard_url(1234, path="health") == "http://127.0.0.1:1234/health"


# -- `dok dashboard ID` ----------------------------------------------------------------------------------------
def test_dashboard_prints_the_url_first_and_stops_when_the_run_ends() -> None:
    ended = job_pod(phase="Succeeded", terminated="Completed")
    kube = FakeKube(jobs=[job()], pods=[job_pod()], reads=[job_pod(), job_pod(), ended])
    out, err = io.StringIO(), io.StringIO()
    seen: list[str] = []

    def sleep(seconds: float) -> None:  # while it forwards: the printed URL reaches the pod's dashboard
        if not seen:
            seen.append(out.getvalue().splitlines()[0])
            assert dashboard.answers(seen[0])

    args = args_for(IDENT, "--port", "0")
    code = dashboard.cmd_dashboard(args, out=out, err=err, kube=kube, namespace="ns", sleep=sleep)  # type: ignore[arg-type]
    assert code == 0
    first = out.getvalue().splitlines()[0]
    assert first.startswith("http://127.0.0.1:") and first.endswith("/status") and first == seen[0]
    assert kube.streams >= 1
    assert kube.access_checked[0].subresource == "portforward" and kube.access_checked[0].namespace == "ns"
    assert "has finished" in err.getvalue()


def test_dashboard_without_the_portforward_right_fails_before_printing_a_url() -> None:
    kube = FakeKube(jobs=[job()], pods=[job_pod()], allowed=False)
    out = io.StringIO()
    with pytest.raises(Forbidden) as info:
        dashboard.cmd_dashboard(args_for(IDENT), out=out, err=io.StringIO(), kube=kube, namespace="ns")  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    assert "pods/portforward" in (info.value.hint or "") + info.value.message
    assert out.getvalue() == "" and kube.streams == 0


def test_dashboard_of_an_unknown_run_is_run_not_found() -> None:
    kube = FakeKube(jobs=[], pods=[])
    with pytest.raises(RunNotFound) as info:
        dashboard.cmd_dashboard(args_for(IDENT), out=io.StringIO(), err=io.StringIO(), kube=kube, namespace="ns")  # type: ignore[arg-type]
    assert info.value.exit_code == 2 and IDENT in info.value.message


def test_dashboard_of_a_finished_run_is_run_finished() -> None:
    kube = FakeKube(jobs=[job("Succeeded")], pods=[job_pod(phase="Succeeded", terminated="Completed")])
    with pytest.raises(RunFinished):
        dashboard.cmd_dashboard(args_for(IDENT), out=io.StringIO(), err=io.StringIO(), kube=kube, namespace="ns")  # type: ignore[arg-type]
    assert kube.access_checked == []  # nothing was opened


def test_an_explicit_busy_port_is_an_error_naming_it() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        kube = FakeKube(jobs=[job()], pods=[job_pod()])
        with pytest.raises(Exception, match=f"cannot listen on 127.0.0.1:{port}"):
            dashboard.open_forward(kube, namespace="ns", pod="run-job-abc", port=port)  # type: ignore[arg-type]


# -- `dok run --dashboard` -------------------------------------------------------------------------------------
def test_run_dashboard_says_the_link_once_the_dashboard_answers() -> None:
    kube = FakeKube(jobs=[job()], pods=[job_pod()])
    said: list[str] = []
    run = dashboard.RunDashboard(kube=kube, namespace="ns", identifier=IDENT, say=said.append, port=0,  # type: ignore[arg-type]
                                 interval=0.05).start()
    try:
        deadline = time.monotonic() + 20
        while not said and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        run.stop()
    assert len(said) == 1 and said[0].startswith("dashboard: http://127.0.0.1:") and "/status" in said[0], said
    assert run.url is not None and run.url in said[0]


def test_run_dashboard_problems_are_warnings_not_failures() -> None:
    kube = FakeKube(jobs=[job()], pods=[job_pod()], allowed=False)
    said: list[str] = []
    run = dashboard.RunDashboard(kube=kube, namespace="ns", identifier=IDENT, say=said.append, port=0,  # type: ignore[arg-type]
                                 interval=0.05).start()
    deadline = time.monotonic() + 20
    while not said and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop()
    assert said and said[0].startswith("warning: no dashboard:") and "portforward" in said[0]


def test_check_run_options_accepts_an_attached_cluster_run() -> None:
    dashboard.check_run_options(dashboard=True, detach=False, local=False)
    dashboard.check_run_options(dashboard=False, detach=True, local=True)
    with pytest.raises(UsageError):
        dashboard.check_run_options(dashboard=True, detach=True, local=False)
