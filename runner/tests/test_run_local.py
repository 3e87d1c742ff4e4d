"""The whole runner lifecycle (`dok.runner.execute`) with local worker processes instead of pods:
bundle checked, flow run on an adaptive cluster, termination log written, exit codes, cleanup."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time

import pytest

from dok.core import Flow, Parameter, bundle, decode_summary, task
from dok.runner.monitor import RunMonitor
from dok.runner.run import execute

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the helper next to this file
from local_backend import LocalProcessBackend, free_port  # noqa: E402


@task
def numbers(n):
    return list(range(n))


@task
def slow_square(x):
    import time as _t

    _t.sleep(0.3)
    return x * x


@task
def total(xs):
    return sum(xs)


@task
def explode(x):
    raise ValueError(f"boom {x}")


def fanout_flow():
    with Flow("fanout") as flow:
        n = Parameter("n", default=6)
        total(slow_square.map(numbers(n)))
    return flow


def failing_flow():
    with Flow("failing") as flow:
        explode(1)
    return flow


def environ(tmp_path, sha, **extra):
    env = {
        "DOK_IDENTIFIER": "0f8e2d3c-1111-2222-3333-444455556666", "DOK_FLOW_NAME": "fanout",
        "DOK_IMAGE": "unused", "DOK_NAMESPACE": "local", "DOK_POD_NAME": "job-pod", "DOK_POD_UID": "uid",
        "DOK_POD_IP": "127.0.0.1", "DOK_BUNDLE_SHA256": sha, "DOK_MAX_WORKERS": "2",
        "DOK_SCHEDULER_PORT": str(free_port()), "DOK_TERMINATION_LOG": str(tmp_path / "termination-log"),
        # The start timeout is not under test here (workers that cannot start exit at once and are caught
        # by their exit): generous, as starting Python worker processes can take long on a loaded machine.
        "DOK_ADAPT_INTERVAL": "0.3", "DOK_WATCH_INTERVAL": "0.3", "DOK_WORKER_START_TIMEOUT": "120",
    }
    env.update(extra)
    return env


def go(tmp_path, flow, backend, **extra):
    path = tmp_path / "flow.dokflow"
    info = bundle.dump(flow, path)
    stream = io.StringIO()
    outcome = execute(None, str(path), environ=environ(tmp_path, info.sha256, **extra),
                      backend_factory=lambda config: backend, monitor=RunMonitor(stream=stream),
                      install_signal_handlers=False)
    log = stream.getvalue()
    summary = (tmp_path / "termination-log").read_text()
    return outcome, log, summary


def test_success_exit_0_summary_and_no_leftovers(tmp_path):
    backend = LocalProcessBackend()
    outcome, log, summary = go(tmp_path, fanout_flow(), backend, DOK_PARAMETERS='{"n": 8}')
    assert outcome.exit_code == 0, log
    assert outcome.state.is_successful()
    assert outcome.state.result == {"total": sum(x * x for x in range(8))} or sum(x * x for x in range(8)) in \
        outcome.state.result.values(), outcome.state.result
    decoded = decode_summary(summary)
    assert decoded.is_successful()
    assert "task slow_square[3]: SUCCESS" in log or "slow_square[3]" in log, log
    assert "scaling: requested worker" in log and "finished: SUCCESS (exit code 0)" in log
    from dok.core.progress import parse_record

    records = [r for r in map(parse_record, log.splitlines()) if r is not None]
    assert records and records[-1].final, log  # the launcher's progress view is fed from the job log
    assert records[-1].groups["slow_square"] == {"success": 8}, records[-1]
    assert backend.alive() == [] and backend.procs == {}


def test_failing_task_exit_1_with_the_error(tmp_path):
    backend = LocalProcessBackend()
    outcome, log, summary = go(tmp_path, failing_flow(), backend, DOK_FLOW_NAME="failing")
    assert outcome.exit_code == 1, log
    decoded = decode_summary(summary)
    assert decoded.is_failed()
    assert any("boom 1" in (s.message or "") for s in decoded.task_states.values()), summary
    assert backend.alive() == []


def test_workers_that_cannot_start_exit_3_naming_the_worker(tmp_path):
    backend = LocalProcessBackend(command=["sh", "-c", "exit 2"])
    t0 = time.monotonic()
    outcome, log, summary = go(tmp_path, fanout_flow(), backend)
    assert outcome.exit_code == 3, log
    assert time.monotonic() - t0 < 30
    decoded = decode_summary(summary)
    assert decoded.is_failed() and "failed before joining the scheduler" in decoded.message
    assert "local-worker-" in decoded.message
    assert backend.alive() == []


def test_bundle_hash_mismatch_is_refused_before_anything_starts(tmp_path):
    path = tmp_path / "flow.dokflow"
    bundle.dump(fanout_flow(), path)
    backend = LocalProcessBackend()
    stream = io.StringIO()
    outcome = execute(None, str(path), environ=environ(tmp_path, "0" * 64), backend_factory=lambda c: backend,
                      monitor=RunMonitor(stream=stream), install_signal_handlers=False)
    assert outcome.exit_code == 3
    assert backend.created == []
    text = decode_summary((tmp_path / "termination-log").read_text()).message
    assert "sha256" in text.lower() or "hash" in text.lower(), text


def test_missing_bundle_hash_is_refused(tmp_path):
    path = tmp_path / "flow.dokflow"
    bundle.dump(fanout_flow(), path)
    env = environ(tmp_path, "")
    outcome = execute(None, str(path), environ=env, backend_factory=lambda c: LocalProcessBackend(),
                      monitor=RunMonitor(stream=io.StringIO()), install_signal_handlers=False)
    assert outcome.exit_code == 3 and "DOK_BUNDLE_SHA256 is missing" in outcome.state.message


def test_unknown_parameter_is_refused_before_workers(tmp_path):
    backend = LocalProcessBackend()
    outcome, log, _ = go(tmp_path, fanout_flow(), backend, DOK_PARAMETERS='{"nope": 1}')
    assert outcome.exit_code == 3 and "nope" in outcome.state.message
    assert backend.created == []


def test_sigterm_cancels_and_cleans_up(tmp_path):
    """SIGTERM to the runner process: the run ends Cancelled, exit 1, every worker deleted."""
    backend = LocalProcessBackend()
    path = tmp_path / "flow.dokflow"
    info = bundle.dump(fanout_flow(), path)
    stream = io.StringIO()
    result = {}

    def fire():
        deadline = time.monotonic() + 60
        while not backend.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=fire, daemon=True)
    killer.start()
    previous = signal.getsignal(signal.SIGTERM)
    outcome = execute(None, str(path), environ=environ(tmp_path, info.sha256, DOK_PARAMETERS='{"n": 200}'),
                      backend_factory=lambda c: backend, monitor=RunMonitor(stream=stream))
    assert signal.getsignal(signal.SIGTERM) is previous
    log = stream.getvalue()
    assert outcome.exit_code == 1, log
    assert "SIGTERM" in outcome.state.message
    assert decode_summary((tmp_path / "termination-log").read_text()).kind.value == "cancelled"
    assert backend.alive() == [] and backend.procs == {}


def test_forbidden_pod_creation_exits_3_with_the_hint(tmp_path):
    from dok.runner.exceptions import Forbidden

    class NoPermission(LocalProcessBackend):
        async def create(self, name, scheduler_address):
            raise Forbidden(f"create pod local/{name}: forbidden (pods is forbidden)",
                            hint="the runner's service account needs pods create")

    backend = NoPermission()
    t0 = time.monotonic()
    outcome, log, summary = go(tmp_path, fanout_flow(), backend)
    assert outcome.exit_code == 3, log
    assert time.monotonic() - t0 < 20
    message = decode_summary(summary).message
    assert "forbidden" in message and "service account needs pods create" in message, message


@task(resources={"GPU": 1})
def on_gpu(x):
    return x


def gpu_flow():
    with Flow("gpu") as flow:
        on_gpu(1)
    return flow


def test_a_task_no_worker_can_run_fails_at_once_exit_1(tmp_path):
    """A backend that knows its workers' Dask resources (the pod backend: from the worker pod spec) and has no
    GPU: a GPU task fails the run before any worker is asked for, naming the task, instead of waiting."""
    class NoGpu(LocalProcessBackend):
        worker_resources: dict = {}

        async def create(self, name, scheduler_address):
            raise AssertionError("no worker must be started")

    t0 = time.monotonic()
    outcome, log, summary = go(tmp_path, gpu_flow(), NoGpu(), DOK_FLOW_NAME="gpu")
    assert outcome.exit_code == 1, log
    assert time.monotonic() - t0 < 20
    message = decode_summary(summary).message
    assert "task 'on_gpu' needs GPU=1, a worker has GPU=0" in message and "nvidia.com/gpu" in message, message
