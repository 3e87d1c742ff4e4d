"""The worker pod's preStop drain: the scheduler moves the worker's results to the others, then closes it."""

from __future__ import annotations

import asyncio

from distributed import Client, LocalCluster

from dok.runner.drain import drain, main


def test_drain_moves_results_instead_of_losing_them():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        workers = sorted(cluster.scheduler.workers.values(), key=lambda ws: str(ws.name))
        victim, other = workers[0], workers[1]
        futures = client.map(lambda x: x * 10, range(20), workers=[victim.address], pure=False)
        client.gather(futures)
        assert all(victim.address in holders for holders in client.who_has(futures).values())

        message = client.sync(drain, cluster.scheduler.address, victim.name, timeout=30)
        assert f"retired {victim.name}" in message
        assert victim.address not in cluster.scheduler.workers
        assert all(holders == (other.address,) for holders in client.who_has(futures).values())
        assert client.gather(futures) == [x * 10 for x in range(20)]


def test_unknown_worker_and_missing_settings_return_quickly(monkeypatch, capsys):
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=":0") as cluster:
        message = asyncio.run(drain(cluster.scheduler.address, "not-a-worker", timeout=10))
        assert "nothing to retire" in message
    monkeypatch.delenv("DOK_SCHEDULER_ADDRESS", raising=False)
    assert main() == 0
    assert "nothing to do" in capsys.readouterr().err
    monkeypatch.setenv("DOK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")  # nothing listens: a clear line, exit 0
    monkeypatch.setenv("DOK_WORKER_NAME", "w")
    monkeypatch.setenv("DOK_DRAIN_TIMEOUT", "2")
    assert main() == 0
    assert "will be recomputed" in capsys.readouterr().err


def test_a_pod_of_several_workers_retires_them_all():
    from distributed import Scheduler, Worker

    async def scenario() -> None:
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None) as scheduler:
            async with Worker(scheduler.address, name="p-worker-1/0", nthreads=1) as a, \
                    Worker(scheduler.address, name="p-worker-1/1", nthreads=1) as b, \
                    Worker(scheduler.address, name="p-worker-2", nthreads=1) as other, \
                    Client(scheduler.address, asynchronous=True) as client:
                futures = client.map(lambda x: x + 1, range(10), workers=[a.address, b.address], pure=False)
                await client.gather(futures)
                message = await drain(scheduler.address, "p-worker-1", timeout=30, processes=2)
                assert "retired p-worker-1 (2 of its 2 worker processes)" in message
                assert set(scheduler.workers) == {other.address}
                assert await client.gather(futures) == [x + 1 for x in range(10)]  # moved, not lost

    asyncio.run(scenario())
