"""RunMonitor.explain: worker addresses in a Dask error become pod names and why those pods ended."""

from __future__ import annotations

import io

from dok.runner.monitor import RunMonitor


def test_killed_worker_names_the_pod_and_why_it_ended():
    monitor = RunMonitor(stream=io.StringIO())
    monitor.worker_requested("run-worker-3")
    monitor.worker_joined("run-worker-3", address="tcp://10.244.0.7:40123")
    monitor.worker_replaced("run-worker-3", "the worker crashed (OOMKilled)")
    error = RuntimeError("Attempted to run task 'inc-1' on 4 different workers, but all those workers died while "
                         "running it. The last worker that attempt to run the task was tcp://10.244.0.7:40123.")
    text = monitor.explain(error)
    assert text == ("tcp://10.244.0.7:40123 is worker pod run-worker-3, which ended: "
                    "the worker crashed (OOMKilled)")
    assert monitor.explain(RuntimeError("tcp://10.9.9.9:1 unknown")) is None
    assert monitor.explain(ValueError("no address")) is None


def test_worker_logs_are_copied_with_the_worker_mark():
    out = io.StringIO()
    monitor = RunMonitor(stream=out)
    monitor.worker_log("run-worker-1", "hello from a task\nsecond line\n")
    assert out.getvalue().splitlines() == ["[worker run-worker-1] hello from a task",
                                           "[worker run-worker-1] second line"]


def test_a_closing_worker_copies_its_log_before_its_pod_is_deleted():
    import asyncio

    from dok.runner.cluster import BackendWorker

    calls: list[str] = []

    class Backend:
        async def worker_log(self, name):
            calls.append(f"log {name}")
            return "printed by a task\n"

        async def delete(self, name):
            calls.append(f"delete {name}")
            return True

    out = io.StringIO()
    monitor = RunMonitor(stream=out)
    monitor.worker_joined("w-0")  # only workers that ran have a log worth keeping
    worker = BackendWorker("tcp://127.0.0.1:1", "w-0", backend=Backend(), monitor=monitor)
    asyncio.run(worker.close())
    assert calls == ["log w-0", "delete w-0"]
    assert "[worker w-0] printed by a task" in out.getvalue()


def test_a_log_that_reads_as_waiting_is_asked_again_and_a_never_joined_worker_is_skipped():
    import asyncio

    from dok.runner.cluster import BackendWorker

    attempts: list[int] = []

    class Backend:
        async def worker_log(self, name):
            attempts.append(1)
            if len(attempts) < 3:
                raise RuntimeError('container "worker" in pod "w-1" is waiting to start: ContainerCreating')
            return "late line\n"

        async def delete(self, name):
            return True

    out = io.StringIO()
    monitor = RunMonitor(stream=out)
    monitor.worker_joined("w-1")
    asyncio.run(BackendWorker("tcp://127.0.0.1:1", "w-1", backend=Backend(), monitor=monitor).close())
    assert len(attempts) == 3 and "[worker w-1] late line" in out.getvalue()
    attempts.clear()
    asyncio.run(BackendWorker("tcp://127.0.0.1:1", "w-2", backend=Backend(), monitor=monitor).close())
    assert attempts == []  # never joined: nothing read


def test_a_pod_of_several_workers_joins_once_and_is_counted_as_one_pod():
    now = [0.0]
    monitor = RunMonitor(stream=io.StringIO(), clock=lambda: now[0], worker_processes=2)
    monitor.worker_requested("p-worker-0")
    now[0] = 1.0
    monitor.worker_joined("p-worker-0/1", address="tcp://10.0.0.5:4001")
    now[0] = 2.0
    monitor.worker_joined("p-worker-0/0", address="tcp://10.0.0.5:4002")
    monitor.worker_requested("p-worker-1")
    assert monitor.joined == {"p-worker-0"} and monitor.alive == {"p-worker-0/0", "p-worker-0/1"}
    assert monitor.worker_counts() == (2, 2)  # two workers running, one pod (two workers) starting
    assert monitor.explain(RuntimeError("lost tcp://10.0.0.5:4002")) == "tcp://10.0.0.5:4002 is worker pod p-worker-0"
    log = monitor._stream.getvalue()
    assert "worker p-worker-0/1 joined 1.0s after request; 1 worker(s) connected" in log
    assert "worker p-worker-0/0 joined 2.0s after request; 2 worker(s) connected" in log
    assert monitor.summary() == ("worker pods (2 workers each): 2 requested, 1 joined, 0 removed, 0 replaced; "
                                 "at most 2 worker(s) at once")
