"""The worker pods' entrypoint: `python -m dok.runner.worker SCHEDULER --name N --nthreads K ...`.

One Dask `Worker` (no nanny: the pod is the unit of restart) in this process, started directly instead of
through the `dask worker` CLI. Measured in a flow image (tools/bench/worker_start.py), the CLI spends its
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
import gc
import signal
import sys
from dataclasses import dataclass
from typing import Any

WORKER_MODULE = "dok.runner.worker"  # `python -m` it (this module's name also when run as __main__)
EXIT_OK = 0
EXIT_START_FAILED = 1


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
    ns = parser.parse_args(argv)
    if ns.nthreads < 1:
        parser.error(f"--nthreads must be at least 1, not {ns.nthreads}")
    return WorkerArgs(scheduler_address=ns.scheduler_address, name=ns.name, nthreads=ns.nthreads,
                      death_timeout=ns.death_timeout, memory_limit=ns.memory_limit,
                      local_directory=ns.local_directory, resources=ns.resources)


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    g0, g1, g2 = gc.get_threshold()
    gc.set_threshold(g0 * 3, g1 * 3, g2 * 3)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
