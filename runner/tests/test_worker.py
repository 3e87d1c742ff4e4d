"""The worker pods' entrypoint (`python -m dok.runner.worker`): its command line, what it imports, and a real
worker process that joins an in-process scheduler under its name, follows its flags and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
from distributed import Scheduler

from dok.runner.manifests import worker_command
from dok.runner.worker import WorkerArgs, parse_args, seconds, worker_argv, worker_kwargs


def test_command_line_round_trip_and_worker_kwargs():
    args = WorkerArgs(scheduler_address="tcp://10.0.0.1:8786", name="w-1", nthreads=2, death_timeout=60,
                      memory_limit=2**31)
    assert parse_args(worker_argv(args)[3:]) == args
    assert worker_kwargs(args) == {"name": "w-1", "nthreads": 2, "local_directory": "/tmp", "death_timeout": 60,
                                   "dashboard": False, "memory_limit": 2**31}
    assert "memory_limit" not in worker_kwargs(WorkerArgs(scheduler_address="a", name="n", nthreads=1,
                                                          death_timeout=1))
    assert (seconds("60s"), seconds("1.5"), seconds(" 2s ")) == (60.0, 1.5, 2.0)


@pytest.mark.parametrize("argv,complaint", [
    (["tcp://x:1", "--name", "n", "--nthreads", "0", "--death-timeout", "1s"], "--nthreads must be at least 1"),
    (["tcp://x:1", "--name", "n", "--nthreads", "1", "--death-timeout", "soon"], "--death-timeout"),
    (["tcp://x:1", "--name", "n", "--nthreads", "1", "--death-timeout", "-3s"], "--death-timeout"),
    (["tcp://x:1", "--nthreads", "1", "--death-timeout", "1s"], "--name"),
])
def test_bad_command_lines_exit_2_naming_the_flag(argv, complaint, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert complaint in capsys.readouterr().err


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def test_imports_neither_dok_core_nor_the_dask_cli():
    code = ("import sys, dok.runner.worker; "
            "print(sorted(m for m in ('dok.core', 'dok.kube', 'dok.runner.run', 'click', 'dask.cli', "
            "'kubernetes', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # distributed itself is imported when the worker starts, not before


async def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def worker_pod(tmp_path, **command_options):
    """A scheduler on this machine and `python -m dok.runner.worker` against it (stderr piped), as a worker pod
    would run it: yields (scheduler, process); the process is killed afterwards if still running."""
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None) as scheduler:
        command = worker_command(scheduler_address=scheduler.address, death_timeout=30, **command_options)
        command[command.index("--local-directory") + 1] = str(tmp_path)
        proc = subprocess.Popen([sys.executable, *command[1:]], env=_env(), stderr=subprocess.PIPE, text=True)
        try:
            yield scheduler, proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()


def test_a_worker_process_joins_under_its_name_and_stops_on_sigterm(tmp_path):
    async def scenario() -> None:
        async with worker_pod(tmp_path, name="dok-t-worker-0", nthreads=2, memory_limit=3 * 2**30) as (scheduler, proc):
            await _wait_for(lambda: any(ws.name == "dok-t-worker-0" for ws in scheduler.workers.values()))
            [ws] = scheduler.workers.values()
            assert (ws.nthreads, ws.memory_limit) == (2, 3 * 2**30)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
            await _wait_for(lambda: not scheduler.workers)

    asyncio.run(scenario())


def test_no_scheduler_within_the_death_timeout_exits_1():
    command = worker_command(scheduler_address="tcp://127.0.0.1:9", name="lonely", nthreads=1, death_timeout=2)
    out = subprocess.run([sys.executable, *command[1:]], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "could not start against the scheduler at tcp://127.0.0.1:9" in out.stderr


def test_dask_worker_resources_round_trip_and_reach_the_worker() -> None:
    args = WorkerArgs(scheduler_address="tcp://s:8786", name="w", nthreads=1, death_timeout=60,
                      resources=(("GPU", 2.0),))
    argv = worker_argv(args)
    assert argv[argv.index("--resources") + 1] == "GPU=2"
    assert parse_args(argv[3:]) == args
    assert worker_kwargs(args)["resources"] == {"GPU": 2.0}
    assert "resources" not in worker_kwargs(WorkerArgs(scheduler_address="tcp://s:8786", name="w", nthreads=1,
                                                       death_timeout=60))


def test_processes_flag_round_trip_and_names() -> None:
    from dok.runner.worker import group_suffixes, pod_of, pods_for, process_names

    args = WorkerArgs(scheduler_address="tcp://s:8786", name="dok-f-1234-worker-3", nthreads=1, death_timeout=60,
                      processes=3)
    argv = worker_argv(args)
    assert argv[argv.index("--processes") + 1] == "3"
    assert parse_args(argv[3:]) == args
    assert "--processes" not in worker_argv(WorkerArgs(scheduler_address="a", name="n", nthreads=1, death_timeout=1))
    assert process_names("p-worker-3", 1) == ["p-worker-3"]
    names = process_names("p-worker-3", 3)
    assert names == ["p-worker-3/0", "p-worker-3/1", "p-worker-3/2"]
    assert names == ["p-worker-3" + suffix for suffix in group_suffixes(3)]  # SpecCluster's plan names
    assert {pod_of(n) for n in names} == {"p-worker-3"} and pod_of("p-worker-3") == "p-worker-3"
    assert (pods_for(8, 4), pods_for(5, 4), pods_for(3, 1), pods_for(0, 4)) == (2, 2, 3, 0)  # whole pods


@pytest.mark.parametrize("processes", ["0", "65", "two"])
def test_bad_processes_exit_2(processes, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["tcp://x:1", "--name", "n", "--nthreads", "1", "--death-timeout", "1s", "--processes", processes])
    assert exc.value.code == 2
    assert "--processes" in capsys.readouterr().err


def test_a_pod_of_three_processes_joins_as_three_named_workers_and_stops_on_sigterm(tmp_path):
    async def scenario() -> None:
        async with worker_pod(tmp_path, name="dok-t-worker-7", nthreads=2, memory_limit=2**30,
                              processes=3) as (scheduler, proc):
            await _wait_for(lambda: len(scheduler.workers) == 3)
            workers = sorted(scheduler.workers.values(), key=lambda ws: ws.name)
            assert [ws.name for ws in workers] == [f"dok-t-worker-7/{i}" for i in range(3)]
            assert {(ws.nthreads, ws.memory_limit) for ws in workers} == {(2, 2**30)}
            assert len({ws.pid for ws in workers} | {proc.pid}) == 4  # three processes besides the parent
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
            await _wait_for(lambda: not scheduler.workers)

    asyncio.run(scenario())


def test_one_process_killed_stops_the_pods_other_processes_with_its_code(tmp_path):
    async def scenario() -> None:
        async with worker_pod(tmp_path, name="dok-t-worker-8", nthreads=1, processes=2) as (scheduler, proc):
            await _wait_for(lambda: len(scheduler.workers) == 2)
            victim = next(ws for ws in scheduler.workers.values() if ws.name == "dok-t-worker-8/1")
            os.kill(victim.pid, signal.SIGKILL)  # as the kernel's OOM killer would
            assert await asyncio.to_thread(proc.wait, 30) == 128 + signal.SIGKILL
            assert "dok-t-worker-8/1: ended with code 137; stopping the pod's other worker(s) dok-t-worker-8/0" \
                in proc.stderr.read()
            await _wait_for(lambda: not scheduler.workers)

    asyncio.run(scenario())

def test_a_pod_whose_processes_cannot_reach_the_scheduler_exits_1():
    command = worker_command(scheduler_address="tcp://127.0.0.1:9", name="lonely", nthreads=1, death_timeout=2,
                             processes=2)
    out = subprocess.run([sys.executable, *command[1:]], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "dok worker lonely/0: could not start" in out.stderr or "dok worker lonely/1: could not start" in out.stderr
