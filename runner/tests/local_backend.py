"""A WorkerBackend that starts worker subprocesses on this machine (tests of the SpecCluster wiring): the same
entrypoint as the worker pods (`python -m dok.runner.worker`, dok.runner.manifests.worker_command)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys

from dok.runner.health import Problem, WorkerObservation

from dok.runner.manifests import worker_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalProcessBackend:
    description = "local process"

    def __init__(self, *, command: list[str] | None = None, nthreads: int = 1, processes: int = 1) -> None:
        self.command = command  # replaces the worker command (e.g. a command that fails)
        self.nthreads = nthreads
        self.processes = processes  # Dask workers per "pod" (process group), as worker_processes
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.deleted_by_us: set[str] = set()
        self.created: list[str] = []
        self._numbers = itertools.count()

    async def prepare(self) -> None:
        return None

    def new_name(self) -> str:
        return f"local-worker-{next(self._numbers)}"

    async def create(self, name: str, scheduler_address: str) -> None:
        cmd = self.command or [sys.executable, *worker_command(scheduler_address=scheduler_address, name=name,
                                                               nthreads=self.nthreads, death_timeout=30,
                                                               processes=self.processes)[1:]]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.procs[name] = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        self.created.append(name)

    async def delete(self, name: str) -> bool:
        proc = self.procs.pop(name, None)
        if proc is None:
            return False
        self.deleted_by_us.add(name)
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        return True

    def kill(self, name: str) -> None:
        """Simulate `kubectl delete pod`: the process disappears (SIGKILL) without the cluster asking."""
        proc = self.procs.pop(name)
        proc.kill()

    async def observe(self) -> list[WorkerObservation]:
        out = []
        for name, proc in self.procs.items():
            if proc.returncode is None:
                out.append(WorkerObservation(name=name, phase="running"))
            elif proc.returncode == 0:
                out.append(WorkerObservation(name=name, phase="exited", exit_code=0))
            else:
                out.append(WorkerObservation(name=name, phase="failed", exit_code=proc.returncode,
                                             problem=Problem(reason="Error",
                                                             message=f"exited with code {proc.returncode}")))
        return out

    async def diagnostics(self, name: str, *, log: bool = True) -> str:
        return "(local process: no log kept)"

    async def worker_log(self, name: str) -> str:
        return ""  # the worker processes write to /dev/null

    async def cleanup(self) -> list[str]:
        names = list(self.procs)
        for name in names:
            await self.delete(name)
        return names

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.returncode is None]
