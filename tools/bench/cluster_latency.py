"""Benchmark: how fast a run gets going on the cluster, from `execute()` to the flow's Success.

    tools/bazel run //tools/bench:cluster_latency -- [--rounds 3] [--max-workers 4] [--namespace dok-bench]

The flow image is built once before timing (a cache hit when it already exists). Each round launches a
trivial fan-out (enough one-second tasks to ask for `--max-workers` workers) and records, from the moment
`execute()` is called: the job pod Running, the first finished task, `max_workers` worker pods Running (also
measured from the runner's first scale-up request, i.e. once demand appears), and the flow's Success
(before cleanup, which is timed separately). Prints one line per round and the medians; the last line is
`to_success_s=<median>`. Targets: to_max_workers_s <= 5 after demand appears, to_success_s <= 10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from dok.core import DaskOnKubernetesEnvironment, Flow, task
from dok.kube import pod_snapshot
import dok.launcher

COLUMNS = ("to_job_running_s", "to_first_task_s", "to_max_workers_s", "max_workers_after_demand_s",
           "to_success_s", "cleanup_s")


@task
def work(i: int) -> int:
    time.sleep(1.0)
    return i


@task
def collect(xs: list[int]) -> int:
    return len(xs)


def make_flow(tasks: int) -> Flow:
    with Flow("latency") as flow:
        collect(work.map(list(range(tasks))))
    return flow


class Watch(threading.Thread):
    """Polls the run's pods every 0.1 s and records when the job pod and `want` workers are Running."""

    def __init__(self, handle, t0: float, want: int) -> None:
        super().__init__(daemon=True)
        self.handle, self.t0, self.want = handle, t0, want
        self.job_running: float | None = None
        self.max_workers: float | None = None
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pods = self.handle.kube.list_pods(self.handle.namespace, self.handle.selector)
            except Exception:  # noqa: BLE001 - a missed poll only costs resolution
                pods = []
            now = time.monotonic() - self.t0
            running = [p for p in map(pod_snapshot, pods) if p.phase == "Running"]
            comp = lambda p: p.labels.get("app.kubernetes.io/component")  # noqa: E731
            if self.job_running is None and any(comp(p) == "job" for p in running):
                self.job_running = now
            workers = sum(1 for p in running if comp(p) == "worker")
            self.peak = max(self.peak, workers)
            if self.max_workers is None and workers >= self.want:
                self.max_workers = now
            self.stop.wait(0.1)


def one_round(env: DaskOnKubernetesEnvironment, *, max_workers: int, namespace: str) -> dict[str, float]:
    marks: dict[str, float] = {}
    t0 = time.monotonic()

    def on_line(line: str) -> None:
        now = time.monotonic() - t0
        if "scaling" in line and "demand" not in marks:
            marks["demand"] = now
        if "task " in line and "SUCCESS" in line and "first_task" not in marks:
            marks["first_task"] = now

    handle = dok.launcher.execute(env, namespace=namespace, max_workers=max_workers, min_workers=0)
    watch = Watch(handle, t0, max_workers)
    watch.start()
    state = handle.wait(stream_logs=True, cleanup=False, on_line=on_line)
    success = time.monotonic() - t0
    watch.stop.set()
    watch.join()
    c0 = time.monotonic()
    handle.cleanup(timeout=120)
    cleanup = time.monotonic() - c0
    if not state.is_successful():
        raise SystemExit(f"cluster_latency: the run did not succeed: {state}")
    nan = float("nan")
    demand = marks.get("demand", watch.job_running or nan)
    return {
        "to_job_running_s": watch.job_running or nan,
        "to_first_task_s": marks.get("first_task", nan),
        "to_max_workers_s": watch.max_workers or nan,
        "max_workers_after_demand_s": (watch.max_workers or nan) - demand,
        "to_success_s": success,
        "cleanup_s": cleanup,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-workers", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=0, help="one-second tasks (default: 3 per worker)")
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--base-image", default=os.environ.get("DOK_BASE_IMAGE", "dok-base:bookworm-py3.11"))
    ap.add_argument("--ca-bundle", default=os.environ.get("DOK_BUILD_CA_BUNDLE",
                                                          "/etc/ssl/certs/ca-certificates.crt"))
    args = ap.parse_args(argv)
    flow = make_flow(args.tasks or 3 * args.max_workers)
    env = DaskOnKubernetesEnvironment(base_image=args.base_image, max_workers=args.max_workers,
                                      namespace=args.namespace)
    import dok.builder

    b0 = time.monotonic()
    env = dok.builder.build(env, flow, push=False, ca_bundle=args.ca_bundle)
    print(f"image {env.image} ready in {time.monotonic() - b0:.1f}s (not counted)", flush=True)
    rows = []
    for r in range(args.rounds):
        row = one_round(env, max_workers=args.max_workers, namespace=args.namespace)
        rows.append(row)
        print(f"round {r + 1}: " + " ".join(f"{k}={row[k]:.2f}" for k in COLUMNS), flush=True)
    med = {k: statistics.median(row[k] for row in rows) for k in COLUMNS}
    print("median: " + " ".join(f"{k}={med[k]:.2f}" for k in COLUMNS))
    print(f"to_success_s={med['to_success_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
