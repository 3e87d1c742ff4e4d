"""Benchmark: the peak memory of a local run of a large map, and how many lines it prints.

    tools/bazel run //tools/bench:client_memory -- [--tasks 50000] [--batch auto|none|N]

Runs `dok run --local`'s code path (`dok.launcher.local.run_local`: an adaptive LocalCluster whose scheduler
lives in this process, the engine, the progress printer) on a flow `total(inc.map(range(n)))`, in a fresh
process per setting, and prints the process's peak RSS (`ru_maxrss`) and the number of lines printed.
First with one Dask task per child (batch_size=1), then with `--batch` (default: none, dok's measured
layout). Last line: `client_peak_rss_mb=<with --batch>` (target <= 250 for 50,000 tasks).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys


def child(tasks: int, batch: str) -> None:
    from dok.core import Flow, task
    from dok.core.runspec import RunSpec
    from dok.launcher.local import run_local

    size = None if batch == "none" else (batch if batch == "auto" else int(batch))

    @task(batch_size=size)
    def inc(x: int) -> int:
        return x + 1

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("client-memory") as flow:
        total(inc.map(list(range(tasks))))
    out = io.StringIO()
    state = run_local(flow, parameters={}, spec=RunSpec(min_workers=1, max_workers=2), out=out)
    assert state.is_successful(), state
    assert state.result == {"total": tasks * (tasks + 1) // 2}, state.result
    lines = out.getvalue().count("\n")
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "lines": lines}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=50_000)
    ap.add_argument("--batch", default="none", help="none (dok's measured default), auto, or N (1: unbatched)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.tasks, args.batch)
        return 0
    result = {}
    for batch in ["1", args.batch] if args.batch != "1" else ["1"]:
        proc = subprocess.run([sys.executable, __file__, "--child", "--tasks", str(args.tasks), "--batch", batch],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            return 1
        result[batch] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"batch={batch}: tasks={args.tasks} peak_rss_mb={result[batch]['rss_mb']:.0f} "
              f"lines={result[batch]['lines']}", flush=True)
    print(f"client_peak_rss_mb={result[args.batch]['rss_mb']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
