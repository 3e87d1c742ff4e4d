"""The worker pods' entrypoint: `python -m dok.runner.worker SCHEDULER --name N --nthreads K ...`.

One Dask `Worker` (no nanny: the pod is the unit of restart) in this process, started directly instead of
through the `dask worker` CLI; with `--processes P` (P > 1), P Dask workers in P processes forked after
distributed is imported once, named `N/0` … `N/P-1` (`process_names`; `pod_of` goes back), each with the
given `--nthreads` and `--memory-limit` — a pod then costs the node one pod's start-up for P workers, and
its processes share the imported modules' memory. The pod is still the unit of restart: when one process
fails (cannot start, crashes, is OOM-killed) the others are stopped and the pod exits with its code. Measured in a flow image (tools/bench/worker_start.py), the CLI spends its
start-up on things a worker pod does not use: the `dask` command loads click and every installed `dask_cli`
entry point (a scan of all installed distributions' metadata) before it even imports distributed. Here only
argparse (stdlib) and distributed are imported; nothing of dok.core or dok.kube, and `dok.runner`'s
`__init__` is lazy for the same reason.

Same behaviour as `dask worker --no-nanny` with the flags the runner passes (dok.runner.manifests):
- the worker registers under `--name` with `--nthreads` threads, `--memory-limit` bytes (Dask's "auto"
  without it), scratch in `--local-directory`, no dashboard; `--death-timeout` (seconds, "60s" accepted)
  bounds how long it tries to reach the scheduler;
- SIGTERM/SIGINT stop it (the pod's preStop hook, dok.runner.drain, has already asked the scheduler to move
  its results); a worker that closes on its own exits 0, one that cannot reach the scheduler exits 1;
- the garbage collector thresholds are raised as the CLI does (fewer pauses with many small objects).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

WORKER_MODULE = "dok.runner.worker"  # `python -m` it (this module's name also when run as __main__)
EXIT_OK = 0
EXIT_START_FAILED = 1
GROUP_SEPARATOR = "/"  # a worker pod's P > 1 processes are Dask workers `<pod>/<i>` ("/" is never in a pod name)
MAX_PROCESSES = 64


def process_names(name: str, processes: int) -> list[str]:
    """The Dask worker names of a pod named `name` running `processes` workers: [name] for one."""
    if processes <= 1:
        return [name]
    return [f"{name}{GROUP_SEPARATOR}{i}" for i in range(processes)]


def group_suffixes(processes: int) -> list[str]:
    """SpecCluster's "group" suffixes of a pod running `processes` workers (name + suffix = process name)."""
    return [f"{GROUP_SEPARATOR}{i}" for i in range(processes)]


def pods_for(workers: int, processes: int) -> int:
    """Pods that hold `workers` Dask workers at `processes` per pod (whole pods: rounded up)."""
    return -(-workers // max(1, processes))


def pod_of(worker_name: str) -> str:
    """The pod a Dask worker name belongs to (inverse of `process_names`)."""
    return worker_name.partition(GROUP_SEPARATOR)[0]


@dataclass(frozen=True, kw_only=True)
class WorkerArgs:
    """The command line of one worker pod (see `worker_argv` for the other direction)."""

    scheduler_address: str
    name: str
    nthreads: int
    death_timeout: float
    memory_limit: int | None = None
    local_directory: str = "/tmp"
    resources: tuple[tuple[str, float], ...] = ()  # Dask worker resources (GPU=N), sorted by name
    processes: int = 1  # Dask workers (processes) in this pod; each has `nthreads`, `memory_limit`, `resources`


def worker_resources(text: str) -> tuple[tuple[str, float], ...]:
    """'GPU=1,MEM=2.5' -> (("GPU", 1.0), ("MEM", 2.5)) (what --resources accepts)."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, amount = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not NAME=AMOUNT")
        out[name.strip()] = float(amount)
    return tuple(sorted(out.items()))


def seconds(text: str) -> float:
    """'60', '60s', '1.5s' -> seconds (what --death-timeout accepts)."""
    value = float(text.strip().removesuffix("s"))
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


def parse_args(argv: list[str]) -> WorkerArgs:
    parser = argparse.ArgumentParser(prog="python -m dok.runner.worker",
                                     description="one Dask worker in this process (a dok worker pod)")
    parser.add_argument("scheduler_address")
    parser.add_argument("--name", required=True)
    parser.add_argument("--nthreads", type=int, required=True)
    parser.add_argument("--death-timeout", type=seconds, required=True)
    parser.add_argument("--memory-limit", type=int, default=None)
    parser.add_argument("--local-directory", default="/tmp")
    parser.add_argument("--resources", type=worker_resources, default=())
    parser.add_argument("--processes", type=int, default=1)
    ns = parser.parse_args(argv)
    if ns.nthreads < 1:
        parser.error(f"--nthreads must be at least 1, not {ns.nthreads}")
    if not 1 <= ns.processes <= MAX_PROCESSES:
        parser.error(f"--processes must be between 1 and {MAX_PROCESSES}, not {ns.processes}")
    return WorkerArgs(scheduler_address=ns.scheduler_address, name=ns.name, nthreads=ns.nthreads,
                      death_timeout=ns.death_timeout, memory_limit=ns.memory_limit,
                      local_directory=ns.local_directory, resources=ns.resources, processes=ns.processes)


def worker_argv(args: WorkerArgs) -> list[str]:
    """The command of a worker pod for `args` (parse_args(worker_argv(a)[3:]) == a)."""
    argv = ["python", "-m", WORKER_MODULE, args.scheduler_address,
            "--name", args.name,
            "--nthreads", str(args.nthreads),
            "--local-directory", args.local_directory,
            "--death-timeout", f"{args.death_timeout:g}s"]
    if args.memory_limit is not None:
        argv += ["--memory-limit", str(args.memory_limit)]
    if args.resources:  # Dask worker resources (GPU=N), for tasks declared @task(resources=...)
        argv += ["--resources", ",".join(f"{k}={v:g}" for k, v in args.resources)]
    if args.processes > 1:
        argv += ["--processes", str(args.processes)]
    return argv


def worker_kwargs(args: WorkerArgs) -> dict[str, Any]:
    """The `distributed.Worker` keyword arguments for `args` (what `dask worker --no-nanny` passes)."""
    kwargs: dict[str, Any] = {"name": args.name, "nthreads": args.nthreads,
                              "local_directory": args.local_directory, "death_timeout": args.death_timeout,
                              "dashboard": False}
    if args.memory_limit is not None:
        kwargs["memory_limit"] = args.memory_limit
    if args.resources:
        kwargs["resources"] = dict(args.resources)
    return kwargs


async def serve(args: WorkerArgs) -> int:
    """Run one worker until it closes (0), a signal arrives (0) or it cannot start (1)."""
    from distributed import Worker

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(args.scheduler_address, **worker_kwargs(args))
    stopped = asyncio.create_task(stop.wait())
    started = asyncio.ensure_future(worker)
    done, _ = await asyncio.wait({started, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if started in done:
        try:
            started.result()
        except Exception as exc:  # noqa: BLE001 - the death timeout, a refused connection, a bad address
            print(f"dok worker {args.name}: could not start against the scheduler at {args.scheduler_address}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_START_FAILED
        finished = asyncio.ensure_future(worker.finished())
        await asyncio.wait({finished, stopped}, return_when=asyncio.FIRST_COMPLETED)
    return EXIT_OK


def serve_group(args: WorkerArgs) -> int:
    """Fork `args.processes` workers after importing distributed once; wait for them. A process that ends
    with a non-zero code (or a signal) stops the others: the pod exits with that code, and the runner sees
    a failed pod as for a single worker. SIGTERM/SIGINT are passed on to every process."""
    import distributed  # noqa: F401 - imported once, before the fork, so the processes share it

    gc.freeze()  # what is imported now stays shared (copy-on-write) instead of being touched by collections
    children: dict[int, str] = {}
    for name in process_names(args.name, args.processes):
        pid = os.fork()
        if pid == 0:  # the child: one worker, its own event loop
            code = EXIT_START_FAILED
            try:
                code = asyncio.run(serve(dataclasses.replace(args, name=name, processes=1)))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = name

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    exit_code = EXIT_OK
    while children:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        name = children.pop(pid, None)
        if name is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code  # killed by a signal: the shell's convention
        if code != EXIT_OK and exit_code == EXIT_OK:
            exit_code = code
            if children:
                print(f"dok worker {name}: ended with code {code}; stopping the pod's other worker(s) "
                      f"{', '.join(sorted(children.values()))}", file=sys.stderr, flush=True)
                forward(signal.SIGTERM, None)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    g0, g1, g2 = gc.get_threshold()
    gc.set_threshold(g0 * 3, g1 * 3, g2 * 3)
    if args.processes > 1:
        return serve_group(args)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
