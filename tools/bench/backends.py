"""Benchmark: dok's own worker pods against the dask-kubernetes operator backend (docs/operator.md).

    tools/bazel run //tools/bench:backends -- [--rounds 2] [--workers 3]

Needs the operator (`tools/bazel run //tools:cluster -- operator install`). Runs in a namespace of its own
(`bench-backends-<random>`, created here and deleted at the end). Three flows, each run on both backends,
alternating which goes first, round after round (images built once):
(a) trivial: one task;
(b) fan-out: 4N one-second tasks, which need N workers;
(c) two-phase: 4N two-second tasks, one 8 s task, 4N more two-second tasks that wait for it.
Measured per run: `to_success_s` (execute() to the final Success), `to_workers_s` (execute() to N Running
worker pods; 1 for the trivial flow), `to_zero_pods_s` (the flow's end, i.e. wait() returning, to no worker pod
of the run left). Prints per-run lines, per-backend medians and, last, `operator_over_pods_ratio=<sum of the
operator's median to_success_s over the three flows / the same for pods>`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from typing import Any

import dok.launcher
from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, task, unmapped
from dok.kube import Kube, pod_snapshot

BACKENDS = ("pods", "operator")


@task
def work(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i


@task
def gate(xs: list[int], seconds: float) -> int:
    time.sleep(seconds)
    return len(xs)


@task
def collect(xs: list[int]) -> int:
    return sum(xs)


def trivial_flow() -> Flow:
    with Flow("bench-backends-trivial") as flow:
        work(1, 0.0)
    return flow


def fan_out_flow() -> Flow:
    with Flow("bench-backends-fan-out") as flow:
        n = Parameter("n")
        collect(work.map(n, unmapped(1.0)))
    return flow


def two_phase_flow() -> Flow:
    with Flow("bench-backends-two-phase") as flow:
        n = Parameter("n")
        first = work.map(n, unmapped(2.0))
        g = gate(first, 8.0)
        collect(work.map(n, unmapped(2.0), wait_for=[g]))
    return flow


class WorkerWatch(threading.Thread):
    """Samples the run's worker pods every 0.2 s: when `wanted` were first Running at once."""

    def __init__(self, handle: Any, wanted: int, t0: float) -> None:
        super().__init__(daemon=True)
        self.handle, self.wanted, self.t0 = handle, wanted, t0
        self.reached: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.reached is None:
            running = sum(1 for p in map(pod_snapshot, self._workers()) if p.phase == "Running" and not p.deleting)
            if running >= self.wanted:
                self.reached = time.monotonic() - self.t0
            self.stop.wait(0.2)

    def _workers(self) -> list[Any]:
        try:
            return self.handle.kube.list_pods(self.handle.namespace,
                                              f"{self.handle.selector},app.kubernetes.io/component=worker")
        except Exception:  # noqa: BLE001 - a missed sample only costs resolution
            return []


def one_run(env: DaskOnKubernetesEnvironment, *, backend: str, params: dict, wanted: int, workers: int,
            namespace: str) -> tuple[float, float, float]:
    t0 = time.monotonic()
    handle = dok.launcher.execute(env, namespace=namespace, parameters=params, min_workers=0, max_workers=workers,
                                  backend=backend)
    watch = WorkerWatch(handle, wanted, t0)
    watch.start()
    state = handle.wait(stream_logs=False, cleanup=False)
    ended = time.monotonic()
    to_success = ended - t0
    watch.stop.set()
    watch.join()
    while watch._workers() and time.monotonic() - ended < 180:
        time.sleep(0.2)
    to_zero = time.monotonic() - ended
    handle.cleanup(timeout=120)
    if not state.is_successful():
        raise SystemExit(f"backends bench: a {backend} run did not succeed: {state}")
    return to_success, watch.reached if watch.reached is not None else float("nan"), to_zero


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", "/var/lib/dok-cluster/admin.kubeconfig"))
    ap.add_argument("--base-image", default=os.environ.get("DOK_BASE_IMAGE", "dok-base:bookworm-py3.11"))
    ap.add_argument("--ca-bundle", default=os.environ.get("DOK_BUILD_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
    args = ap.parse_args(argv)
    os.environ["KUBECONFIG"] = args.kubeconfig
    import dok.builder
    from kubernetes import client as k8s  # the bench's own namespace only (the runs go through dok.launcher)

    kube = Kube.from_kubeconfig(args.kubeconfig)
    core = k8s.CoreV1Api(kube.api_client)
    namespace = f"bench-backends-{secrets.token_hex(3)}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    n = 4 * args.workers
    flows = {"trivial": (trivial_flow(), {}, 1), "fan_out": (fan_out_flow(), {"n": list(range(n))}, args.workers),
             "two_phase": (two_phase_flow(), {"n": list(range(n))}, args.workers)}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        envs = {}
        for label, (flow, _, _) in flows.items():
            env = DaskOnKubernetesEnvironment(base_image=args.base_image, max_workers=args.workers,
                                              image_name=f"dok-bench-backends-{label.replace('_', '-')}")
            envs[label] = dok.builder.build(env, flow, push=False, ca_bundle=args.ca_bundle)
        for r in range(args.rounds):
            order = BACKENDS if r % 2 == 0 else tuple(reversed(BACKENDS))
            for label, (_, params, wanted) in flows.items():
                for backend in order:
                    m = one_run(envs[label], backend=backend, params=params, wanted=wanted, workers=args.workers,
                                namespace=namespace)
                    results.setdefault((label, backend), []).append(m)
                    print(f"round {r + 1} {label} {backend}: to_success_s={m[0]:.2f} to_workers_s={m[1]:.2f} "
                          f"to_zero_pods_s={m[2]:.2f}", flush=True)
    finally:
        core.delete_namespace(namespace, body={"propagationPolicy": "Background"})
    def median(values: list[float]) -> float:  # nan = not observed (e.g. a pod deleted before it was seen Running)
        seen = [x for x in values if x == x]
        return statistics.median(seen) if seen else float("nan")

    medians: dict[tuple[str, str], tuple[float, ...]] = {
        k: tuple(median([x[i] for x in v]) for i in range(3)) for k, v in results.items()}
    for backend in BACKENDS:
        for label in flows:
            s, w, z = medians[(label, backend)]
            print(f"median {backend} {label}: to_success_s={s:.2f} to_workers_s={w:.2f} to_zero_pods_s={z:.2f}")
    total = {b: sum(medians[(label, b)][0] for label in flows) for b in BACKENDS}
    print(f"operator_over_pods_ratio={total['operator'] / total['pods']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
