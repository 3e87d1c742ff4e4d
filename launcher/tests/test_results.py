"""Getting results back, the launcher's side: the pick-up decision, the RBAC check, the store reader, the
Job's result location, --output, and the pick-up client against a stand-in for the runner's server."""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cloudpickle
import fsspec
import pytest

from dok.core.results import RESULT_PATH, encode_payload, result_urls
from dok.core.states import Failed, Success
from dok.launcher.exceptions import PermissionDenied, ResultsNotFound
from dok.launcher.manifests import job_manifest
from dok.launcher.results import (DEFAULT_PICKUP_TIMEOUT, ResultPickup, check_pickup_allowed, location_of,
                                  pickup_timeout, read_stored, write_output)
from dok.core.runspec import RunSpec

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
STATE = Failed(message="1 failed", result={"big": b"y" * 100_000, "d": {"a": 1}},
               task_states={"boom": Failed(message="ValueError: no", traceback="Traceback\nValueError: no"),
                            "d": Success(result={"a": 1})})


@pytest.mark.parametrize("location, detach, requested, expected", [
    (None, False, None, DEFAULT_PICKUP_TIMEOUT),   # attached, no store: the runner waits for the pick-up
    (None, False, 30.0, 30.0),
    (None, True, 30.0, None),                       # detached: nobody will come
    ("s3://b/p", False, 30.0, None),                # the store has them
])
def test_pickup_decision(location, detach, requested, expected) -> None:
    assert pickup_timeout(result_location=location, detach=detach, requested=requested) == expected


class _Kube:
    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed
        self.asked: list[str] = []

    def can_i(self, access):
        self.asked.append(str(access))
        return self.allowed, "" if self.allowed else "RBAC: no rule"


def test_portforward_right_checked_with_a_clear_error() -> None:
    check_pickup_allowed(_Kube(True), "team-a")
    kube = _Kube(False)
    with pytest.raises(PermissionDenied, match="create pods/portforward in namespace team-a") as info:
        check_pickup_allowed(kube, "team-a")
    assert info.value.exit_code == 2 and "--results" in info.value.hint


def test_location_of_the_job() -> None:
    spec = RunSpec(identifier=ID, image="localhost:5000/f:1", namespace="ns", result_location="s3://b/runs")
    assert location_of(job_manifest(spec)) == "s3://b/runs"
    assert location_of(job_manifest(spec.replace(result_location=None))) is None
    assert location_of(None) is None


def test_read_stored_and_missing() -> None:
    location = f"memory://dok-launcher-{uuid.uuid4().hex}"
    with pytest.raises(ResultsNotFound, match=f"no results of run {ID} at {location}/{ID}/result.pkl"):
        read_stored(location, ID)
    with fsspec.open(result_urls(location, ID).payload, "wb") as f:
        f.write(encode_payload(STATE, identifier=ID))
    payload = read_stored(location, ID)
    assert payload.state.result["big"] == b"y" * 100_000
    assert payload.state.task_states["boom"].traceback.endswith("ValueError: no")


def test_write_output(tmp_path) -> None:
    path = tmp_path / "out.pkl"
    assert write_output(str(path), STATE) == path.stat().st_size
    assert cloudpickle.loads(path.read_bytes()) == {"big": b"y" * 100_000, "d": {"a": 1}}


class _Runner:
    """A stand-in for the runner's pick-up server: 204 for the first `not_ready` asks, then the payload."""

    def __init__(self, data: bytes, not_ready: int) -> None:
        owner = self
        self.asks = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                assert self.path.startswith(RESULT_PATH + "?wait=")
                owner.asks += 1
                body = b"" if owner.asks <= not_ready else data
                self.send_response(204 if not body else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        pass


def test_pickup_waits_for_the_pod_then_long_polls() -> None:
    runner = _Runner(encode_payload(STATE, identifier=ID), not_ready=2)
    looks = iter([None, None, "job-pod"])
    forwarded: list[str] = []

    def forward(pod: str):
        forwarded.append(pod)
        return runner

    pickup = ResultPickup(kube=None, namespace="ns", job_pod=lambda: next(looks, "job-pod"), forward=forward,
                          poll=0.01).start()
    try:
        payload = pickup.result(timeout=10)
    finally:
        pickup.stop()
        runner.server.shutdown()
    assert payload is not None and payload.identifier == ID and payload.state.result["d"] == {"a": 1}
    assert forwarded == ["job-pod"] and runner.asks == 3


def test_pickup_keeps_the_error_when_the_forward_fails() -> None:
    def forward(pod: str):
        raise OSError("pod ended")

    pickup = ResultPickup(kube=None, namespace="ns", job_pod=lambda: "job-pod", forward=forward, poll=0.01).start()
    try:
        assert pickup.result(timeout=0.3) is None
    finally:
        pickup.stop()
    assert "pod ended" in (pickup.error or "")


def test_arrived_says_when_the_payload_is_here_and_sleeps_once_the_pickup_gave_up() -> None:
    runner = _Runner(encode_payload(STATE, identifier=ID, exit_code=0), not_ready=1)
    pickup = ResultPickup(kube=None, namespace="ns", job_pod=lambda: "job-pod", forward=lambda pod: runner,
                          poll=0.01).start()
    try:
        assert pickup.arrived(10.0)
        assert pickup.payload is not None and pickup.payload.exit_code == 0
    finally:
        pickup.stop()
        runner.server.shutdown()

    def forward(pod: str):
        raise OSError("pod ended")

    failed = ResultPickup(kube=None, namespace="ns", job_pod=lambda: "job-pod", forward=forward, poll=0.01).start()
    failed.stop()
    assert failed.result(timeout=1.0) is None
    t0 = time.monotonic()
    assert not failed.arrived(0.2)
    assert time.monotonic() - t0 >= 0.19  # no busy loop for the caller that polls with it


def test_dok_result_command_reads_the_store(tmp_path) -> None:
    import io

    from dok.launcher.cli import main

    location = f"memory://dok-cli-{uuid.uuid4().hex}"
    out, err = io.StringIO(), io.StringIO()
    assert main(["result", ID, "--results", location], out=out, err=err) == 2
    assert f"no results of run {ID}" in err.getvalue()
    with fsspec.open(result_urls(location, ID).payload, "wb") as f:
        f.write(encode_payload(STATE, identifier=ID))
    target = tmp_path / "r.pkl"
    out, err = io.StringIO(), io.StringIO()
    assert main(["result", ID, "--results", location + "/", "--output", str(target)], out=out, err=err) == 1
    assert cloudpickle.loads(target.read_bytes())["d"] == {"a": 1}
    assert "ValueError: no" in out.getvalue()
    assert main(["result", ID, "--results", "bucket/x"], out=io.StringIO(), err=(e := io.StringIO())) == 2
    assert "not a URL" in e.getvalue()


class _Jobs:
    def __init__(self, jobs) -> None:
        self.jobs = jobs

    def list_jobs(self, namespace, selector):
        return list(self.jobs)


def test_run_handle_result_reads_the_location_its_job_carries() -> None:
    from dok.launcher.handle import RunHandle

    location = f"memory://dok-handle-{uuid.uuid4().hex}"
    spec = RunSpec(identifier=ID, image="localhost:5000/f:1", namespace="ns", result_location=location)
    handle = RunHandle(kube=_Jobs([job_manifest(spec)]), identifier=ID, namespace="ns")
    with pytest.raises(ResultsNotFound, match="no results of run"):
        handle.result()
    with fsspec.open(result_urls(location, ID).payload, "wb") as f:
        f.write(encode_payload(STATE, identifier=ID))
    assert handle.result().result["d"] == {"a": 1}
    bare = RunHandle(kube=_Jobs([]), identifier=ID, namespace="ns")
    with pytest.raises(ResultsNotFound, match="has no result location"):
        bare.result()
    assert bare.result(location=location).task_states["boom"].message == "ValueError: no"


class _Pickup:
    def __init__(self, payload, error=None) -> None:
        self.payload, self.error, self.stopped = payload, error, False

    def result(self, timeout):
        return self.payload

    def stop(self):
        self.stopped = True


def test_wait_prefers_the_picked_up_state_and_says_when_it_has_only_the_summary() -> None:
    from dok.core.results import decode_payload
    from dok.launcher.handle import RunHandle

    summary_state = Failed(message="summary only")
    handle = RunHandle(kube=_Jobs([]), identifier=ID, namespace="ns")
    lines: list[str] = []
    full = _Pickup(decode_payload(encode_payload(STATE, identifier=ID)))
    assert handle._full_state(summary_state, full, lines.append).result["d"] == {"a": 1}
    assert handle.full_results and full.stopped and not lines
    other = RunHandle(kube=_Jobs([]), identifier=ID, namespace="ns")
    assert other._full_state(summary_state, _Pickup(None, "PodNotRunning: gone"), lines.append) is summary_state
    assert not other.full_results and "PodNotRunning: gone" in lines[0] and "summary" in lines[0]


def test_full_results_print_as_python_like_the_summary_does() -> None:
    """`dok run` shows `{'total': 12}` whether the pick-up worked (real values) or only the summary came back."""
    from dok.core import states
    from dok.launcher.render import summary

    real = states.Success(message="ok", result={"total": 12, "name": "a"})
    from_summary = states.Success(message="ok", result={"total": "12", "name": "'a'"})  # reprs as text
    assert summary(real, real_results=True).splitlines()[-1] == "  result: {'total': 12, 'name': 'a'}"
    assert summary(from_summary, result_reprs=True).splitlines()[-1] == "  result: {'total': 12, 'name': 'a'}"
