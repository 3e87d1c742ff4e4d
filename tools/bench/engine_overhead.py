"""Benchmark: dok's DaskExecutor against plain Dask on the same fan-out/reduce.

    tools/bazel run //tools/bench:engine_overhead -- --tasks 2000 [--rounds 7] [--workers 2]
        [--batch auto|none|N] [--task-ms 0]

One LocalCluster (worker processes, 1 thread each) runs, alternately, round after round:

- raw: `futures = client.map(inc, xs, pure=False)`, `client.submit(total, futures).result()`
- dok: a flow `total(inc.map(xs))` run with `DaskExecutor(client)` (States, progress, results), the
  mapped task declared `@task(batch_size=...)` from `--batch` (default "auto": dok runs tiny children in
  batches, each child keeping its own State; "none": no declaration, dok's measured default; "1": one
  Dask task per child, like raw)
With `--task-ms M` every task sleeps M milliseconds (not tiny: batching must not cost anything there).

Each round waits until the scheduler has forgotten the previous round's tasks. A warm-up round of each
is not counted. Prints one line per round and, as the last line, the ratio of the medians:
`engine_overhead_ratio=<dok median / raw median>` (targets: <= 0.5 on tiny tasks, <= 1.05 with 50 ms).

"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time


TASK_SECONDS = 0.0


def inc(x: int) -> int:
    if TASK_SECONDS:
        time.sleep(TASK_SECONDS)
    return x + 1


def total(xs: list[int]) -> int:
    return sum(xs)


def _scheduler_tasks(dask_scheduler) -> int:  # runs on the scheduler
    return len(dask_scheduler.tasks)


def wait_idle(client, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while client.run_on_scheduler(_scheduler_tasks) and time.time() < deadline:
        time.sleep(0.01)


def raw_round(client, n: int) -> float:
    start = time.perf_counter()
    futures = client.map(inc, range(n), pure=False) if not TASK_SECONDS else client.map(
        _sleepy_inc, range(n), [TASK_SECONDS] * n, pure=False)
    result = client.submit(total, futures, pure=False).result()
    elapsed = time.perf_counter() - start
    assert result == n * (n + 1) // 2, result
    del futures
    return elapsed


def dok_round(client, flow, n: int) -> float:
    from dok.core import DaskExecutor

    start = time.perf_counter()
    state = flow.run(parameters={"xs": range(n)}, executor=DaskExecutor(client))
    elapsed = time.perf_counter() - start
    assert state.is_successful(), state
    assert state.result == {"total": n * (n + 1) // 2}, state.result
    return elapsed


def _sleepy_inc(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x + 1


def build_flow(batch: str, task_seconds: float):
    from dok.core import Flow, Parameter, task

    size = None if batch == "none" else (batch if batch == "auto" else int(batch))
    fn = (lambda x: _sleepy_inc(x, task_seconds)) if task_seconds else inc
    with Flow("engine-overhead") as flow:
        xs = Parameter("xs")
        task(total)(task(fn, name="inc", batch_size=size).map(xs))
    return flow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000, help="number of mapped tasks (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="counted rounds of each (default 7)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--batch", default="auto", help="dok's batch_size: auto (default), none, or N")
    parser.add_argument("--task-ms", type=float, default=0.0, help="milliseconds each task sleeps (default 0)")
    args = parser.parse_args(argv)
    global TASK_SECONDS
    TASK_SECONDS = args.task_ms / 1000

    from distributed import Client, LocalCluster

    flow = build_flow(args.batch, TASK_SECONDS)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        print(f"cluster: {args.workers} workers x 1 thread (processes); {args.tasks} mapped tasks + 1 reduce; "
              f"task {args.task_ms:g} ms; dok batch_size={args.batch}", flush=True)
        raw_round(client, args.tasks)  # warm-up: imports, connections, pickling caches
        wait_idle(client)
        dok_round(client, flow, args.tasks)
        wait_idle(client)
        raw_times: list[float] = []
        dok_times: list[float] = []
        for i in range(args.rounds):
            order = ("dok", "raw") if i % 2 == 0 else ("raw", "dok")
            for which in order:
                if which == "dok":
                    dok_times.append(dok_round(client, flow, args.tasks))
                else:
                    raw_times.append(raw_round(client, args.tasks))
                wait_idle(client)
            print(f"round {i + 1}: dok {dok_times[-1]:.3f} s  raw {raw_times[-1]:.3f} s  "
                  f"ratio {dok_times[-1] / raw_times[-1]:.3f}", flush=True)
    dok_median, raw_median = statistics.median(dok_times), statistics.median(raw_times)
    print(f"median: dok {dok_median:.3f} s  raw {raw_median:.3f} s  "
          f"({args.tasks / dok_median:.0f} vs {args.tasks / raw_median:.0f} tasks/s)")
    print(f"engine_overhead_ratio={dok_median / raw_median:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
