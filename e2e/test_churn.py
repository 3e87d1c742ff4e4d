"""e2e (engine/scaling issue): worker churn under many tiny tasks never turns into a false failure.

A flow of 5,000 tiny mapped tasks and one reduce runs with max_workers=3 while the runner's Adaptive
scales worker pods up and down and a saboteur deletes a Running worker pod mid-run (grace 0: its results
are lost and Dask recomputes them). Every run must end Success with the right total, no task State may
read "NoneType", no worker may be retired before it joined, and never more than max_workers worker pods
may be Running at once. `DOK_CHURN_RUNS` sets the number of runs in a row (2 in CI; the on-demand soak
target `//e2e:churn_soak` runs 20).
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import pytest

from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, task
from dok.core.labels import COMPONENT_LABEL, IDENTIFIER_LABEL
from e2e import helpers

BASE_IMAGE = os.environ.get("DOK_BASE_IMAGE") or "dok-base:bookworm-py3.11"
CA_BUNDLE = os.environ.get("DOK_BUILD_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
RUNS = int(os.environ.get("DOK_CHURN_RUNS", "2"))
N = 5000
MAX_WORKERS = 3


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def inc(x: int) -> int:
    return x + 1


@task
def total(xs: list[int]) -> int:
    return sum(xs)


def churn_flow() -> Flow:
    with Flow("e2e-churn") as flow:
        n = Parameter("n", default=N)
        total(inc.map(numbers(n)))
    return flow


@pytest.fixture(scope="module")
def built_env(cluster: helpers.Cluster) -> Any:
    import dok.builder

    env = DaskOnKubernetesEnvironment(base_image=BASE_IMAGE, image_name="dok-e2e-churn", max_workers=MAX_WORKERS)
    return dok.builder.build(env, churn_flow(), push=False, ca_bundle=CA_BUNDLE)


class Saboteur(threading.Thread):
    """Deletes one Running worker pod once two are Running; samples the Running count."""

    def __init__(self, cluster: helpers.Cluster, namespace: str, identifier: str, *,
                 grace: int | None = 0) -> None:
        super().__init__(daemon=True)
        self.grace = grace  # 0: killed at once (results lost); None: the pod's grace period (it drains)
        self.cluster, self.namespace = cluster, namespace
        self.selector = f"{IDENTIFIER_LABEL}={identifier},{COMPONENT_LABEL}=worker"
        self.stop = threading.Event()
        self.deleted: list[str] = []
        self.max_running = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pods = self.cluster.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
            except Exception:  # noqa: BLE001 - a sampling hiccup
                time.sleep(0.3)
                continue
            running = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]
            self.max_running = max(self.max_running, len(running))
            if len(running) >= 2 and not self.deleted:
                time.sleep(1.0)  # let it hold results first
                victim = running[0].metadata.name
                try:
                    self.cluster.core.delete_namespaced_pod(victim, self.namespace, grace_period_seconds=self.grace)
                    self.deleted.append(victim)
                except Exception:  # noqa: BLE001 - already gone
                    pass
            time.sleep(0.3)


def retired_before_joining(lines: list[str]) -> list[str]:
    """Workers named in a "retiring" scaling line before their "joined" line."""
    joined: set[str] = set()
    bad: list[str] = []
    for line in lines:
        m = re.search(r"worker (\S+) joined", line)
        if m:
            joined.add(m.group(1))
        if "retiring idle worker(s)" in line:
            names = line.split("retiring idle worker(s)")[1].split(";")[0]
            bad += [w.strip() for w in names.split(",") if w.strip() and w.strip() not in joined]
    return bad


def test_churn_runs_all_succeed(cluster: helpers.Cluster, namespace: str, built_env: Any) -> None:
    import dok.launcher

    expected = sum(range(1, N + 1))
    summary: list[str] = []
    for run in range(RUNS):
        handle = dok.launcher.execute(built_env, namespace=namespace, parameters={"n": N},
                                      max_workers=MAX_WORKERS, worker_start_timeout=120)
        saboteur = Saboteur(cluster, namespace, handle.identifier)
        saboteur.start()
        lines: list[str] = []
        started = time.monotonic()
        try:
            state = handle.wait(stream_logs=True, timeout=600, cleanup=True, on_line=lines.append)
        except Exception as exc:  # noqa: BLE001 - show what the run printed
            pytest.fail(f"run {run + 1}: {type(exc).__name__}: {exc}\n" + "\n".join(lines[-80:]))
        finally:
            saboteur.stop.set()
            saboteur.join()
        log = "\n".join(line for line in lines if "task inc[" not in line)
        assert state.is_successful(), f"run {run + 1}: {state!r}\n{log}"
        assert [str(v) for v in (state.result or {}).values()] == [str(expected)], state.result
        assert "NoneType" not in "\n".join(lines), log
        assert retired_before_joining(lines) == [], log
        assert saboteur.max_running <= MAX_WORKERS, f"{saboteur.max_running} Running\n{log}"
        summary.append(f"run {run + 1}: Success in {time.monotonic() - started:.1f}s, deleted {saboteur.deleted}, "
                       f"max running {saboteur.max_running}")
        print(summary[-1], flush=True)
    print("\n".join(summary))


@pytest.mark.parametrize("processes", [1, 2])
def test_a_worker_deleted_gracefully_hands_its_results_over(cluster: helpers.Cluster, namespace: str,
                                                             built_env: Any, processes: int) -> None:
    """`kubectl delete pod` (a node drain, a spot reclaim) of a worker: its preStop hook retires it through
    the scheduler, so its finished results move to the other workers — Dask loses none of them. With two
    workers per pod (`worker_processes=2`) the hook retires both of the pod's workers."""
    import dok.launcher

    handle = dok.launcher.execute(built_env, namespace=namespace, parameters={"n": N},
                                  max_workers=MAX_WORKERS if processes == 1 else 2 * processes,
                                  worker_processes=processes, worker_start_timeout=120)
    saboteur = Saboteur(cluster, namespace, handle.identifier, grace=None)
    saboteur.start()
    lines: list[str] = []
    try:
        state = handle.wait(stream_logs=True, timeout=600, cleanup=True, on_line=lines.append)
    finally:
        saboteur.stop.set()
        saboteur.join()
    log = "\n".join(line for line in lines if "task inc[" not in line)
    assert saboteur.deleted, f"never saw 2 running workers\n{log}"
    assert state.is_successful(), f"{state!r}\n{log}"
    assert [str(v) for v in (state.result or {}).values()] == [str(sum(range(1, N + 1)))]
    assert "lose already computed" not in log, log  # distributed's warning when a worker's data is lost
    names = [saboteur.deleted[0]] if processes == 1 else [f"{saboteur.deleted[0]}/{i}" for i in range(processes)]
    for name in names:
        assert f"worker {name} left" in log, log
