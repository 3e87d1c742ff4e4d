"""Benchmark: adaptive worker pods (min 0 .. max N) against a fixed N-worker cluster (min = max = N).

    tools/bazel run //tools/bench:adaptive -- [--rounds 3] [--workers 4] [--namespace default]

Two flows, each run alternately with adaptive and fixed workers, round after round (images built once):
(a) two-phase: a fan-out of 4N two-second tasks, one 8 s task, another fan-out of 4N two-second tasks
    that waits for it — the adaptive cluster must not make the second fan-out wait for new pods;
(b) tail: a fan-out of 4N two-second tasks, then one 12 s task — a fixed cluster idles N-1 workers
    through the tail, the adaptive one should not.
Measured per run: time from execute() to Success, and worker-seconds (Running worker pods sampled every
0.2 s and integrated). Prints per-round lines, the medians, `worker_seconds_saved=<1 - adaptive/fixed
worker-seconds for (b)>` (target >= 0.3) and, last, `adaptive_over_fixed_ratio=<adaptive/fixed time for (a)>`
(target <= 1.05).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, task
from dok.kube import pod_snapshot
import dok.launcher


@task
def work(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


@task
def long_one(xs: list[int], seconds: float) -> int:
    time.sleep(seconds)
    return len(xs)


@task
def collect(xs: list[int]) -> int:
    return sum(xs)


def two_phase_flow() -> Flow:
    from dok.core import unmapped

    with Flow("bench-two-phase") as flow:
        n = Parameter("n")
        first = work.map(n, unmapped(2.0))
        gate = long_one(first, 8.0)
        collect(work.map(n, unmapped(2.0), wait_for=[gate]))
    return flow


def tail_flow() -> Flow:
    from dok.core import unmapped

    with Flow("bench-tail") as flow:
        n = Parameter("n")
        long_one(work.map(n, unmapped(2.0)), 12.0)
    return flow


class WorkerSeconds(threading.Thread):
    def __init__(self, handle) -> None:
        super().__init__(daemon=True)
        self.handle = handle
        self.total = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        last = time.monotonic()
        while not self.stop.is_set():
            try:
                pods = self.handle.kube.list_pods(self.handle.namespace, self.handle.selector)
            except Exception:  # noqa: BLE001 - a missed sample only costs resolution
                pods = []
            now = time.monotonic()
            running = sum(1 for p in map(pod_snapshot, pods) if p.phase == "Running" and not p.deleting
                          and p.labels.get("app.kubernetes.io/component") == "worker")
            self.total += running * (now - last)
            last = now
            self.stop.wait(0.2)


def one_run(env: DaskOnKubernetesEnvironment, *, n: int, minimum: int, maximum: int,
            namespace: str) -> tuple[float, float]:
    t0 = time.monotonic()
    handle = dok.launcher.execute(env, namespace=namespace, parameters={"n": list(range(n))},
                                  min_workers=minimum, max_workers=maximum)
    sampler = WorkerSeconds(handle)
    sampler.start()
    state = handle.wait(stream_logs=False, cleanup=False)
    elapsed = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    handle.cleanup(timeout=120)
    if not state.is_successful():
        raise SystemExit(f"adaptive bench: a run did not succeed: {state}")
    return elapsed, sampler.total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--base-image", default=os.environ.get("DOK_BASE_IMAGE", "dok-base:bookworm-py3.11"))
    ap.add_argument("--ca-bundle", default=os.environ.get("DOK_BUILD_CA_BUNDLE",
                                                          "/etc/ssl/certs/ca-certificates.crt"))
    args = ap.parse_args(argv)
    import dok.builder

    n = 4 * args.workers
    envs = {}
    for label, flow in (("two_phase", two_phase_flow()), ("tail", tail_flow())):
        env = DaskOnKubernetesEnvironment(base_image=args.base_image, max_workers=args.workers,
                                          image_name=f"dok-bench-{label.replace('_', '-')}")
        envs[label] = dok.builder.build(env, flow, push=False, ca_bundle=args.ca_bundle)
    times: dict[tuple[str, str], list[float]] = {}
    wsec: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        modes = ("adaptive", "fixed") if r % 2 == 0 else ("fixed", "adaptive")
        for label in ("two_phase", "tail"):
            for mode in modes:
                minimum = 0 if mode == "adaptive" else args.workers
                t, w = one_run(envs[label], n=n, minimum=minimum, maximum=args.workers, namespace=args.namespace)
                times.setdefault((label, mode), []).append(t)
                wsec.setdefault((label, mode), []).append(w)
                print(f"round {r + 1} {label} {mode}: to_success_s={t:.2f} worker_seconds={w:.1f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    medw = {k: statistics.median(v) for k, v in wsec.items()}
    for k in sorted(med):
        print(f"median {k[0]} {k[1]}: to_success_s={med[k]:.2f} worker_seconds={medw[k]:.1f}")
    print(f"tail_time_ratio={med[('tail', 'adaptive')] / med[('tail', 'fixed')]:.3f}")
    print(f"worker_seconds_saved={1 - medw[('tail', 'adaptive')] / medw[('tail', 'fixed')]:.3f}")
    print(f"adaptive_over_fixed_ratio={med[('two_phase', 'adaptive')] / med[('two_phase', 'fixed')]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
