"""The job pod's own worker (`job_worker_threads`): tasks run at once in the runner's process, before any
worker (pod) joins; once one joins, the job pod's worker takes no new tasks and is retired with its results
moved, so the rest runs on workers only. Local worker processes stand in for pods (localhost TCP only)."""

from __future__ import annotations

import io
import os
import sys
import time

from distributed import Client

from dok.runner.cluster import DokCluster
from dok.runner.health import HealthPolicy
from dok.runner.monitor import JOB_WORKER, RunMonitor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the helper next to this file
from local_backend import LocalProcessBackend, free_port  # noqa: E402


def pid_after(delay: float) -> int:
    import os as _os
    import time as _t

    _t.sleep(delay)
    return _os.getpid()


def make(backend: LocalProcessBackend, *, threads: int, maximum: int) -> tuple[DokCluster, RunMonitor]:
    monitor = RunMonitor(stream=io.StringIO())
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster = DokCluster(backend=backend, monitor=monitor,
                         policy=HealthPolicy(start_timeout=60.0, failure_budget=3, scheduler_address=address),
                         contact_address=address, host="127.0.0.1", port=port, watch_interval=0.2,
                         job_worker_threads=threads)
    cluster.adapt(minimum=0, maximum=maximum, interval="300ms", wait_count=2)
    return cluster, monitor


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_task_runs_at_once_in_the_job_pod_then_workers_take_over_and_its_results_move():
    backend = LocalProcessBackend()
    cluster, monitor = make(backend, threads=1, maximum=2)
    try:
        with Client(cluster, set_as_default=False) as client:
            first = client.submit(pid_after, 0.0, pure=False)
            assert first.result(timeout=30) == os.getpid()  # ran in this process: no worker had to start
            assert not backend.created or not monitor.joined  # and before any worker joined
            kept = client.submit(lambda: "made in the job pod", pure=False)
            assert kept.result(timeout=30) == "made in the job pod"
            later = client.map(pid_after, [0.3] * 12, pure=False)
            pids = client.gather(later)
            assert wait_for(lambda: cluster.job_worker is None, 30), monitor._stream.getvalue()
            names = {info["name"] for info in client.scheduler_info()["workers"].values()}
            assert JOB_WORKER not in names
            assert kept.result(timeout=30) == "made in the job pod"  # its result moved to a worker process
            assert client.who_has(kept)[kept.key]  # held by a worker that is still there
            assert any(p != os.getpid() for p in pids)
        log = monitor._stream.getvalue()
        assert "the job pod's own worker joined" in log
        assert "takes no new tasks" in log and "retired, its results moved" in log, log
        assert f"worker {JOB_WORKER}" not in log  # never counted as a worker pod
        assert monitor.fatal_error is None
    finally:
        cluster.close(timeout=30)
    assert backend.alive() == []


def test_without_job_worker_threads_nothing_runs_in_the_job_pod():
    backend = LocalProcessBackend()
    cluster, monitor = make(backend, threads=0, maximum=1)
    try:
        with Client(cluster, set_as_default=False) as client:
            assert client.submit(pid_after, 0.0, pure=False).result(timeout=60) != os.getpid()
        assert cluster.job_worker is None
        assert "job pod's own worker" not in monitor._stream.getvalue()
    finally:
        cluster.close(timeout=30)
