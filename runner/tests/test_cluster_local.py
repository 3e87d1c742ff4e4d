"""DokCluster (SpecCluster + Adaptive) with local worker processes: scales up to max and back to 0,
replaces a worker that vanished, fails fast when workers cannot start."""

from __future__ import annotations

import io
import os
import sys
import threading
import time

import pytest
from distributed import Client

from dok.runner.cluster import DokCluster
from dok.runner.health import HealthPolicy
from dok.runner.monitor import RunMonitor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the helper next to this file
from local_backend import LocalProcessBackend, free_port  # noqa: E402


def gated(x, gate, delay=0.5):
    """x * 2, `delay` seconds after the file `gate` exists. The tests open the gate once the cluster has the
    workers they check for: the work cannot drain before then, however slowly worker processes start on a
    loaded machine (the race these tests lost: Adaptive rightly never needed a late worker once the first
    ones had done the work)."""
    import os as _os
    import time as _t

    deadline = _t.monotonic() + 120
    while not _os.path.exists(gate) and _t.monotonic() < deadline:
        _t.sleep(0.05)
    _t.sleep(delay)
    return x * 2


# start_timeout: not under test here; starting Python worker processes can take long on a loaded machine.
def make_cluster(backend, *, start_timeout=120.0, budget=3, minimum=0, maximum=3):
    processes = getattr(backend, "processes", 1)
    monitor = RunMonitor(stream=io.StringIO(), worker_processes=processes)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster = DokCluster(backend=backend, monitor=monitor,
                         policy=HealthPolicy(start_timeout=start_timeout, failure_budget=budget,
                                             scheduler_address=address),
                         contact_address=address, host="127.0.0.1", port=port, watch_interval=0.3,
                         worker_processes=processes)
    cluster.adapt(minimum=minimum, maximum=maximum, interval="300ms", wait_count=2)
    return cluster, monitor


class Sampler(threading.Thread):
    def __init__(self, backend):
        super().__init__(daemon=True)
        self.backend, self.max_alive, self.stop = backend, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.max_alive = max(self.max_alive, len(self.backend.alive()))
            time.sleep(0.1)


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_adaptive_scales_to_max_never_beyond_and_back_to_zero(tmp_path):
    backend = LocalProcessBackend()
    cluster, monitor = make_cluster(backend, maximum=3)
    sampler = Sampler(backend)
    sampler.start()
    gate = tmp_path / "gate"
    try:
        with Client(cluster, set_as_default=False) as client:
            t0 = time.monotonic()
            futures = client.map(gated, range(60), gate=str(gate), delay=0.5)
            assert wait_for(lambda: len(monitor.alive) == 3, 60), monitor._stream.getvalue()
            to_max = time.monotonic() - t0
            gate.touch()
            assert client.gather(futures) == [x * 2 for x in range(60)]
            del futures  # results held by the client keep one worker alive (it stores them)
            assert wait_for(lambda: not backend.alive() and not cluster.worker_spec, 30), monitor._stream.getvalue()
        log = monitor._stream.getvalue()
        assert sampler.max_alive == 3, log
        assert monitor.max_alive == 3
        assert "scaling: requested worker local-worker-0" in log and "joined" in log and "retiring" in log
        print(f"to_max_workers_s={to_max:.1f}")
    finally:
        sampler.stop.set()
        cluster.close(timeout=30)
    assert backend.alive() == []
    assert monitor.fatal_error is None


def test_pods_of_two_worker_processes_scale_whole_to_max_and_back_to_zero(tmp_path):
    backend = LocalProcessBackend(processes=2)  # a "pod" = one process group running two Dask workers
    cluster, monitor = make_cluster(backend, maximum=4)
    sampler = Sampler(backend)
    sampler.start()
    gate = tmp_path / "gate"
    try:
        with Client(cluster, set_as_default=False) as client:
            futures = client.map(gated, range(40), gate=str(gate), delay=0.3)
            assert wait_for(lambda: len(monitor.alive) == 4, 60), monitor._stream.getvalue()
            names = sorted(ws["name"] for ws in client.scheduler_info()["workers"].values())
            assert names == sorted(f"{pod}/{i}" for pod in backend.created for i in (0, 1))
            gate.touch()
            assert client.gather(futures) == [x * 2 for x in range(40)]
            del futures
            assert wait_for(lambda: not backend.alive() and not cluster.worker_spec, 30), monitor._stream.getvalue()
        log = monitor._stream.getvalue()
        assert sampler.max_alive == 2 and len(backend.created) == 2, log  # 4 workers from 2 pods, never more
        assert monitor.max_alive == 4 and monitor.joined == set(backend.created)  # joined: per pod
        assert "in 2 pod(s)" in log and "retiring idle worker(s)" in log
        for line in (ln for ln in log.splitlines() if "retiring idle worker(s)" in ln):
            retired = line.split("retiring idle worker(s) ")[1].split(";")[0].split(", ")
            pods = {name.partition("/")[0] for name in retired}
            assert sorted(retired) == sorted(f"{pod}/{i}" for pod in pods for i in (0, 1)), line  # whole pods
    finally:
        sampler.stop.set()
        cluster.close(timeout=30)
    assert backend.alive() == []
    assert monitor.fatal_error is None


def test_vanished_worker_is_replaced_and_results_are_correct(tmp_path):
    backend = LocalProcessBackend()
    cluster, monitor = make_cluster(backend, maximum=2)
    gate = tmp_path / "gate"
    try:
        with Client(cluster, set_as_default=False) as client:
            futures = client.map(gated, range(40), gate=str(gate), delay=0.4)
            assert wait_for(lambda: len(monitor.alive) == 2, 60), monitor._stream.getvalue()
            victim = sorted(monitor.alive)[0]
            backend.kill(victim)  # like `kubectl delete pod`, without the cluster asking
            # a replacement is requested while the work still waits at the gate
            assert wait_for(lambda: len(backend.created) >= 3, 60), monitor._stream.getvalue()
            gate.touch()
            assert client.gather(futures) == [x * 2 for x in range(40)]
            log = monitor._stream.getvalue()
            assert f"{victim} will be replaced" in log or f"worker {victim} left" in log, log
    finally:
        cluster.close(timeout=30)
    assert monitor.fatal_error is None, monitor._stream.getvalue()
    assert backend.alive() == []


def test_workers_that_cannot_start_fail_fast_with_the_reason():
    backend = LocalProcessBackend(command=["sh", "-c", "echo boom >&2; exit 3"])
    cluster, monitor = make_cluster(backend, minimum=1, maximum=2)
    try:
        assert monitor.fatal_event.wait(20), monitor._stream.getvalue()
        text = str(monitor.fatal_error)
        assert "failed before joining the scheduler" in text and "local-worker-" in text and "code 3" in text
    finally:
        cluster.close(timeout=30)
    assert backend.alive() == []
