"""Benchmark: a large parameter used by many mapped tasks — dok against raw Dask with the value scattered once.

    tools/bazel run //tools/bench:large_values -- [--mb 10] [--tasks 100,1000] [--rounds 5] [--workers 2]

One LocalCluster (worker processes, 1 thread each). For each task count, alternating rounds of:
- raw: `big = client.scatter([value])[0]`, `client.map(use, [big] * n, range(n))`, gather the results
  (the best a Dask user can do by hand);
- dok: a flow `use.map(unmapped(Parameter("blob")), range(n))` run with `DaskExecutor(client)`; dok
  scatters the parameter once by itself.
Prints per-round times, the client's RSS growth during the dok rounds for each task count (flat in the
task count when the value is not copied per task), and as the last line the ratio of the medians at the
largest task count: `large_value_ratio=<dok / raw>` (target <= 1.2).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time


def use(blob: bytes, i: int) -> int:
    return len(blob) + i


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def raw_round(client, value: bytes, n: int) -> float:
    start = time.perf_counter()
    (big,) = client.scatter([value], hash=False)
    futures = client.map(use, [big] * n, range(n), pure=False)
    results = client.gather(futures)
    elapsed = time.perf_counter() - start
    assert results == [len(value) + i for i in range(n)]
    del futures, big
    return elapsed


def dok_round(client, flow, value: bytes, n: int) -> float:
    from dok.core import DaskExecutor

    start = time.perf_counter()
    state = flow.run(parameters={"blob": value, "n": list(range(n))}, executor=DaskExecutor(client))
    elapsed = time.perf_counter() - start
    assert state.is_successful(), state
    assert state.result["use"] == [len(value) + i for i in range(n)]
    return elapsed


def build_flow():
    from dok.core import Flow, Parameter, task, unmapped

    with Flow("large-values") as flow:
        task(use).map(unmapped(Parameter("blob")), Parameter("n"))
    return flow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=10, help="size of the parameter in MB (default 10)")
    parser.add_argument("--tasks", default="100,1000", help="comma-separated task counts (default 100,1000)")
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds of each (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.tasks.split(",") if c]

    from distributed import Client, LocalCluster

    value = b"v" * (args.mb * 2**20)
    flow = build_flow()
    ratios: list[float] = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        print(f"cluster: {args.workers} workers x 1 thread; parameter {args.mb} MB; tasks {counts}", flush=True)
        raw_round(client, value, 10)
        dok_round(client, flow, value, 10)
        for n in counts:
            raw_t: list[float] = []
            dok_t: list[float] = []
            base = rss_mb()
            peak = base
            for i in range(args.rounds):
                for which in (("dok", "raw") if i % 2 == 0 else ("raw", "dok")):
                    if which == "dok":
                        dok_t.append(dok_round(client, flow, value, n))
                        peak = max(peak, rss_mb())
                    else:
                        raw_t.append(raw_round(client, value, n))
                print(f"tasks={n} round {i + 1}: dok {dok_t[-1]:.3f} s  raw {raw_t[-1]:.3f} s", flush=True)
            ratio = statistics.median(dok_t) / statistics.median(raw_t)
            ratios.append(ratio)
            print(f"tasks={n}: median dok {statistics.median(dok_t):.3f} s raw {statistics.median(raw_t):.3f} s "
                  f"ratio {ratio:.3f}; client rss growth during dok rounds {peak - base:.0f} MB", flush=True)
    print(f"large_value_ratio={ratios[-1]:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
