"""e2e (issue 5, scaling): a fan-out flow with many slow-ish tasks and max_workers=3 on the real cluster.

The runner's Adaptive scales worker pods up to 3 Running pods with this run's identifier, never more, and
after the flow every worker pod goes away. Also checks what every worker pod looks like (labels,
ownerReference to the job pod, restricted securityContext, no service-account token) while it runs.
Prints the measured times (`to_first_worker_s`, `to_max_workers_s`, `to_success_s`, `workers_gone_s`).
The first test runs on both worker backends (`backend` fixture: dok's pods, the dask-kubernetes operator)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, task, unmapped
from dok.core.labels import COMPONENT_LABEL, IDENTIFIER_LABEL
from e2e import helpers

BASE_IMAGE = os.environ.get("DOK_BASE_IMAGE") or "dok-base:bookworm-py3.11"
CA_BUNDLE = os.environ.get("DOK_BUILD_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def slow_square(x: int, delay: float) -> int:
    import time as _time

    _time.sleep(delay)
    return x * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


def scaling_flow() -> Flow:
    with Flow("e2e-scaling") as flow:
        n = Parameter("n", default=36)
        delay = Parameter("delay", default=1.5)
        total(slow_square.map(numbers(n), unmapped(delay)))
    return flow


@pytest.fixture(scope="module")
def built_env(cluster: helpers.Cluster) -> Any:
    import dok.builder

    env = DaskOnKubernetesEnvironment(base_image=BASE_IMAGE, image_name="dok-e2e-scaling", max_workers=3)
    return dok.builder.build(env, scaling_flow(), push=False, ca_bundle=CA_BUNDLE)


class WorkerSampler(threading.Thread):
    """Polls this run's worker pods twice a second: max Running, when counts were first reached, pod specs."""

    def __init__(self, cluster: helpers.Cluster, namespace: str, identifier: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.namespace = cluster, namespace
        self.selector = f"{IDENTIFIER_LABEL}={identifier},{COMPONENT_LABEL}=worker"
        self.stop_event = threading.Event()
        self.start_time = time.monotonic()
        self.max_running = 0
        self.first_seen: float | None = None
        self.reached: dict[int, float] = {}
        self.names: set[str] = set()
        self.running_pod: Any = None
        self.errors: list[str] = []
        self.on_first_running: Any = None  # called once (in this thread) with the first Running worker pod
        self.shape_error: str | None = None

    def running(self) -> list[Any]:
        pods = self.cluster.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        self.names.update(p.metadata.name for p in pods)
        if pods and self.first_seen is None:
            self.first_seen = time.monotonic()
        return [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                running = self.running()
                n = len(running)
                self.max_running = max(self.max_running, n)
                self.reached.setdefault(n, time.monotonic())
                if running and self.running_pod is None:
                    self.running_pod = running[0]
                    if self.on_first_running is not None:
                        try:
                            self.on_first_running(running[0])
                        except AssertionError as exc:
                            self.shape_error = repr(exc) or "assertion failed"
            except Exception as exc:  # noqa: BLE001 - a transient API error must not kill the sampler
                self.errors.append(repr(exc))
            time.sleep(0.5)


def _assert_worker_pod_shape(pod: Any, job_pod_name: str, identifier: str) -> None:
    labels = pod.metadata.labels
    assert labels[IDENTIFIER_LABEL] == identifier and labels[COMPONENT_LABEL] == "worker"
    assert labels["app.kubernetes.io/managed-by"] == "dok"
    [owner] = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("Pod", job_pod_name, False)
    spec = pod.spec
    assert spec.restart_policy == "Never" and spec.automount_service_account_token is False
    assert spec.termination_grace_period_seconds <= 5
    assert spec.security_context.run_as_non_root is True
    [c] = spec.containers
    ctx = c.security_context
    assert ctx.run_as_user == 1000 and ctx.allow_privilege_escalation is False
    assert ctx.capabilities.drop == ["ALL"] and ctx.read_only_root_filesystem is True
    assert ctx.seccomp_profile.type == "RuntimeDefault"
    assert c.command[:3] == ["python", "-m", "dok.runner.worker"] and "--death-timeout" in c.command
    assert not any(v.name in ("DOK_POD_IP", "DOK_POD_NAME") for v in c.env or [])


def _assert_operator_worker_pod_shape(cluster: helpers.Cluster, pod: Any, job_pod_name: str, identifier: str
                                      ) -> None:
    """The operator's worker pod: dok's labels and container, owned by the operator's ReplicaSet; the run's
    DaskCluster (whose objects the operator owns) is owned by the job pod."""
    labels = pod.metadata.labels
    assert labels[IDENTIFIER_LABEL] == identifier and labels[COMPONENT_LABEL] == "worker"
    assert labels["dok.dev/worker"] and labels["dask.org/component"] == "worker"
    [owner] = pod.metadata.owner_references
    assert owner.kind == "ReplicaSet"
    [c] = pod.spec.containers
    assert c.command[:3] == ["python", "-m", "dok.runner.worker"] and c.security_context.run_as_user == 1000
    assert pod.spec.automount_service_account_token is False
    custom = helpers.k8s.CustomObjectsApi(cluster.api_client)
    [dask_cluster] = custom.list_namespaced_custom_object(
        "kubernetes.dask.org", "v1", pod.metadata.namespace, "daskclusters",
        label_selector=f"{IDENTIFIER_LABEL}={identifier}")["items"]
    [cluster_owner] = dask_cluster["metadata"]["ownerReferences"]
    assert (cluster_owner["kind"], cluster_owner["name"]) == ("Pod", job_pod_name)


def _job_pod_name(cluster: helpers.Cluster, namespace: str, identifier: str) -> str:
    [pod] = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{IDENTIFIER_LABEL}={identifier},{COMPONENT_LABEL}=job").items
    return str(pod.metadata.name)


def test_scales_to_max_workers_never_beyond_and_back_to_zero(cluster: helpers.Cluster, namespace: str,
                                                              built_env: Any, backend: str) -> None:
    import dok.launcher

    n, delay = 36, 1.5
    started = time.monotonic()
    handle = dok.launcher.execute(built_env, namespace=namespace, parameters={"n": n, "delay": delay},
                                  max_workers=3, min_workers=0, worker_start_timeout=120, backend=backend)
    sampler = WorkerSampler(cluster, namespace, handle.identifier)
    if backend == "operator":  # checked while the run (its job pod, its DaskCluster) still exists
        sampler.on_first_running = lambda pod: _assert_operator_worker_pod_shape(
            cluster, pod, _job_pod_name(cluster, namespace, handle.identifier), handle.identifier)
    sampler.start()
    lines: list[str] = []
    try:
        # cleanup=False: the worker pods must go because the runner deletes them, not the launcher.
        state = handle.wait(stream_logs=True, timeout=600, cleanup=False,
                            on_line=lambda line: (lines.append(line), print(line)))
        finished = time.monotonic()
        log = "\n".join(lines)
        assert state.is_successful(), f"{state!r}\n{log}"
        expected = sum(x * x for x in range(n))  # results come back through the summary as repr text
        assert [str(v) for v in (state.result or {}).values()] == [str(expected)], state.result
        helpers.wait_for("no Running worker pod of the run", lambda: not sampler.running(), timeout=30)
        workers_gone = helpers.wait_for(
            "every worker pod of the run deleted by the runner",
            lambda: not helpers.list_by_label(cluster, "pods", sampler.selector, namespace=namespace)
            and time.monotonic(), timeout=90, interval=1.0)
        handle.cleanup()
        helpers.wait_for(
            "no pod or job of the run left",
            lambda: not helpers.list_by_label(cluster, "pods", {IDENTIFIER_LABEL: handle.identifier},
                                              namespace=namespace)
            and not helpers.list_by_label(cluster, "jobs", {IDENTIFIER_LABEL: handle.identifier},
                                          namespace=namespace), timeout=60, interval=1.0)
    finally:
        sampler.stop_event.set()
        sampler.join(5)
    assert sampler.max_running == 3, f"at most {sampler.max_running} worker pods ran at once\n{log}"
    assert 3 in sampler.reached
    assert len(sampler.names) >= 3
    assert "scaling: requested worker" in log and "joined" in log
    pod = sampler.running_pod
    if backend == "pods":
        _assert_worker_pod_shape(pod, pod.metadata.owner_references[0].name, handle.identifier)
    else:
        assert sampler.shape_error is None, sampler.shape_error
    first = sampler.first_seen or started
    print(f"backend={backend} to_first_worker_s={first - started:.1f} to_max_workers_s={sampler.reached[3] - first:.1f} "
          f"to_success_s={finished - started:.1f} workers_gone_s={workers_gone - finished:.1f} "
          f"worker_pods_used={len(sampler.names)}")


def test_three_concurrent_runs_scale_and_clean_up_only_their_own(cluster: helpers.Cluster, namespace: str,
                                                                  built_env: Any) -> None:
    """Issue 6: three runs at once in one namespace — each stays within its own max_workers, its worker pods
    belong (label and ownerReference) to its own job pod, and each cleans up only its own objects."""
    import dok.launcher

    n, delay, max_workers = 12, 1.5, 2
    handles = [dok.launcher.execute(built_env, namespace=namespace, parameters={"n": n, "delay": delay},
                                    max_workers=max_workers, worker_start_timeout=180) for _ in range(3)]
    samplers = [WorkerSampler(cluster, namespace, h.identifier) for h in handles]
    for s in samplers:
        s.start()
    states: dict[str, Any] = {}
    owners_ok: list[str] = []

    def wait(handle: Any) -> None:
        states[handle.identifier] = handle.wait(stream_logs=False, timeout=600, cleanup=False)

    waiters = [threading.Thread(target=wait, args=(h,), daemon=True) for h in handles]
    for w in waiters:
        w.start()
    # While they run: every worker pod's identifier label matches its owner's (the job pod of that run).
    deadline = time.monotonic() + 600
    while any(w.is_alive() for w in waiters) and time.monotonic() < deadline:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"{COMPONENT_LABEL}=worker").items
        jobs = {p.metadata.name: p.metadata.labels[IDENTIFIER_LABEL] for p in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"{COMPONENT_LABEL}=job").items}
        for p in pods:
            owner = p.metadata.owner_references[0].name
            if owner in jobs:
                assert jobs[owner] == p.metadata.labels[IDENTIFIER_LABEL], p.metadata.name
                owners_ok.append(p.metadata.name)
        time.sleep(1)
    for w in waiters:
        w.join(5)
    for s in samplers:
        s.stop_event.set()
    for h in handles:
        state = states.get(h.identifier)
        assert state is not None and state.is_successful(), f"{h.identifier}: {state!r}"
    for s in samplers:
        assert 1 <= s.max_running <= max_workers, (s.selector, s.max_running)
        helpers.wait_for(f"worker pods of {s.selector} gone",
                         lambda s=s: not helpers.list_by_label(cluster, "pods", s.selector, namespace=namespace),
                         timeout=90, interval=1.0)
    assert owners_ok, "never saw a worker pod with its job pod"
    for h in handles:
        h.cleanup()
    for h in handles:
        helpers.wait_for(f"nothing of {h.identifier} left",
                         lambda h=h: not helpers.list_by_label(cluster, "pods", {IDENTIFIER_LABEL: h.identifier},
                                                               namespace=namespace)
                         and not helpers.list_by_label(cluster, "jobs", {IDENTIFIER_LABEL: h.identifier},
                                                       namespace=namespace), timeout=60, interval=1.0)
    print("three runs: max running per run " + ", ".join(str(s.max_running) for s in samplers))


def test_pods_of_two_worker_processes_scale_whole(cluster: helpers.Cluster, namespace: str, built_env: Any) -> None:
    """worker_processes=2, max_workers=4: 4 Dask workers from at most 2 pods, named <pod>/0 and <pod>/1, each
    pod running `--processes 2`; pods are retired whole and every one is gone after the run."""
    import dok.launcher

    n, delay = 24, 1.5
    handle = dok.launcher.execute(built_env, namespace=namespace, parameters={"n": n, "delay": delay},
                                  max_workers=4, min_workers=0, worker_processes=2, worker_start_timeout=120)
    sampler = WorkerSampler(cluster, namespace, handle.identifier)
    sampler.start()
    lines: list[str] = []
    try:
        state = handle.wait(stream_logs=True, timeout=600, cleanup=False,
                            on_line=lambda line: (lines.append(line), print(line)))
        log = "\n".join(lines)
        assert state.is_successful(), f"{state!r}\n{log}"
        assert [str(v) for v in (state.result or {}).values()] == [str(sum(x * x for x in range(n)))]
        helpers.wait_for("every worker pod of the run deleted by the runner",
                         lambda: not helpers.list_by_label(cluster, "pods", sampler.selector, namespace=namespace),
                         timeout=90, interval=1.0)
        handle.cleanup()
    finally:
        sampler.stop_event.set()
        sampler.join(5)
    assert sampler.max_running == 2 and len(sampler.names) == 2, (sampler.max_running, sampler.names, log)
    assert "4 worker(s) connected" in log, log
    for pod in sampler.names:
        assert f"worker {pod}/0 joined" in log and f"worker {pod}/1 joined" in log, log
    command = sampler.running_pod.spec.containers[0].command
    assert command[command.index("--processes") + 1] == "2", command
    for line in (ln for ln in lines if "retiring idle worker(s)" in ln):
        retired = line.split("retiring idle worker(s) ")[1].split(";")[0].split(", ")
        pods = {name.partition("/")[0] for name in retired}
        assert sorted(retired) == sorted(f"{pod}/{i}" for pod in pods for i in (0, 1)), line  # whole pods only
