"""e2e (issue 12, pod customisation) on the real cluster:

- a run whose environment sets worker resources, a node selector matching the node, a toleration and a
  worker template adding an environment variable and a label: the worker pods read back from the API while
  the run goes carry exactly those, the tasks see the variable, and the flow succeeds;
- a task with `resources={"GPU": 1}` on a cluster without GPUs (no worker of the run has nvidia.com/gpu):
  the run fails at once with a message naming the task and the missing GPU (no hang until a timeout);
- a run with its own service account that lacks the runner's pod rights is refused before anything is created.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, task
from dok.core.labels import COMPONENT_LABEL, IDENTIFIER_LABEL
from dok.core.resources import memory_bytes
from e2e import helpers

BASE_IMAGE = os.environ.get("DOK_BASE_IMAGE") or "dok-base:bookworm-py3.11"
CA_BUNDLE = os.environ.get("DOK_BUILD_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
WORKER_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "768Mi"}}
TOLERATION = {"key": "dok.dev/e2e-pool", "operator": "Equal", "value": "pods", "effect": "NoSchedule"}
WORKER_TEMPLATE = """\
metadata:
  labels:
    dok.dev/e2e-template: "yes"
spec:
  containers:
  - name: worker
    env:
    - name: FROM_TEMPLATE
      value: "hello from the worker template"
"""


@task
def items(n: int) -> list[int]:
    return list(range(n))


@task
def seen_by_worker(x: int) -> str:
    import os as _os
    import time as _time

    _time.sleep(1.0)  # long enough for the test to read the worker pods back while the run goes
    return _os.environ.get("FROM_TEMPLATE", "<missing>")


@task
def distinct(values: list[str]) -> list[str]:
    return sorted(set(values))


def pods_flow() -> Flow:
    with Flow("e2e-pods") as flow:
        distinct(seen_by_worker.map(items(Parameter("n", default=6))))
    return flow


@task(resources={"GPU": 1})
def needs_a_gpu() -> str:
    return "never runs here"


def gpu_flow() -> Flow:
    with Flow("e2e-gpu") as flow:
        needs_a_gpu()
    return flow


def build(env: DaskOnKubernetesEnvironment, flow: Flow) -> DaskOnKubernetesEnvironment:
    import dok.builder

    return dok.builder.build(env, flow, push=False, ca_bundle=CA_BUNDLE)


def worker_pods(cluster: helpers.Cluster, namespace: str, identifier: str) -> list[Any]:
    selector = f"{IDENTIFIER_LABEL}={identifier},{COMPONENT_LABEL}=worker"
    return cluster.core.list_namespaced_pod(namespace, label_selector=selector).items


def the_node(cluster: helpers.Cluster) -> str:
    nodes = cluster.core.list_node().items
    assert nodes, "the cluster has no node"
    return nodes[0].metadata.labels["kubernetes.io/hostname"]


def test_worker_pods_carry_resources_placement_and_template(cluster: helpers.Cluster, namespace: str) -> None:
    import dok.launcher

    hostname = the_node(cluster)
    env = build(DaskOnKubernetesEnvironment(
        base_image=BASE_IMAGE, image_name="dok-e2e-pods", max_workers=2,
        worker_resources=WORKER_RESOURCES, node_selector={"kubernetes.io/hostname": hostname},
        tolerations=[TOLERATION], worker_template=WORKER_TEMPLATE, labels={"dok.dev/e2e-run": "pods"},
    ), pods_flow())
    handle = dok.launcher.execute(env, namespace=namespace, parameters={"n": 6}, worker_start_timeout=120)
    seen: dict[str, Any] = {}

    def watch() -> None:  # read the worker pods back while the run goes
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not handle_done.is_set():
            for pod in worker_pods(cluster, namespace, handle.identifier):
                seen.setdefault(pod.metadata.name, pod)
            time.sleep(0.5)

    handle_done = threading.Event()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    lines: list[str] = []
    try:
        state = handle.wait(stream_logs=True, timeout=600, cleanup=False,
                            on_line=lambda line: (lines.append(line), print(line)))
    finally:
        handle_done.set()
        thread.join(timeout=10)
    log = "\n".join(lines)
    assert state.is_successful(), f"{state!r}\n{log}"
    assert [str(v) for v in (state.result or {}).values()] == [str(["hello from the worker template"])], state.result
    assert seen, f"no worker pod seen while the run went\n{log}"
    for name, pod in seen.items():
        labels = pod.metadata.labels
        assert labels["dok.dev/e2e-template"] == "yes" and labels["dok.dev/e2e-run"] == "pods", (name, labels)
        assert labels[IDENTIFIER_LABEL] == handle.identifier and labels[COMPONENT_LABEL] == "worker"
        assert pod.spec.node_selector == {"kubernetes.io/hostname": hostname}, (name, pod.spec.node_selector)
        tolerations = [{k: v for k, v in t.to_dict().items() if v is not None} for t in pod.spec.tolerations]
        assert TOLERATION in tolerations, (name, tolerations)
        [container] = pod.spec.containers
        assert container.resources.requests == WORKER_RESOURCES["requests"], (name, container.resources)
        assert container.resources.limits == WORKER_RESOURCES["limits"], (name, container.resources)
        env = {e.name: e.value for e in container.env}
        assert env["FROM_TEMPLATE"] == "hello from the worker template", (name, env)
        command = container.command
        assert command[command.index("--memory-limit") + 1] == str(memory_bytes("768Mi")), command
        assert "--resources" not in command  # no GPU: no Dask resources
    job_pod = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"{IDENTIFIER_LABEL}={handle.identifier},{COMPONENT_LABEL}=job").items[0]
    assert job_pod.spec.node_selector == {"kubernetes.io/hostname": hostname}
    assert job_pod.metadata.labels["dok.dev/e2e-run"] == "pods"
    assert "dok.dev/e2e-template" not in job_pod.metadata.labels  # the worker template is the workers' only
    print(f"worker pods read back: {sorted(seen)}")
    handle.cleanup()


def test_a_gpu_task_without_gpu_workers_fails_fast(cluster: helpers.Cluster, namespace: str) -> None:
    import dok.launcher

    env = build(DaskOnKubernetesEnvironment(base_image=BASE_IMAGE, image_name="dok-e2e-gpu", max_workers=2),
                gpu_flow())
    started = time.monotonic()
    handle = dok.launcher.execute(env, namespace=namespace, worker_start_timeout=600)
    lines: list[str] = []
    try:
        state = handle.wait(stream_logs=True, timeout=300, cleanup=False,
                            on_line=lambda line: (lines.append(line), print(line)))
        text = f"{state.message}\n" + "\n".join(lines)
    except Exception as exc:  # noqa: BLE001 - shown in the assertion below
        pytest.fail(f"the run did not end in a failed State: {type(exc).__name__}: {exc}\n" + "\n".join(lines))
    elapsed = time.monotonic() - started
    assert state.is_failed(), text
    assert "task 'needs_a_gpu' needs GPU=1, a worker has GPU=0" in text, text
    assert "nvidia.com/gpu" in text, text  # the hint says how to give workers a GPU
    assert elapsed < 180, f"took {elapsed:.0f}s (the worker start timeout is 600 s: it did not wait for it)"
    assert not worker_pods(cluster, namespace, handle.identifier), "a worker pod was started for nothing"
    print(f"GPU task without GPU workers: failed after {elapsed:.1f}s")
    handle.cleanup()


def test_a_service_account_without_the_runner_rights_is_refused_before_launch(cluster: helpers.Cluster,
                                                                               namespace: str) -> None:
    """`service_account="default"` (no Role in a fresh namespace): SubjectAccessReviews find the missing pod
    rights, the run is refused naming them, and no Job is created."""
    import dok.launcher
    from dok.launcher.exceptions import PermissionDenied

    env = DaskOnKubernetesEnvironment(base_image=BASE_IMAGE, service_account="default", flow_name="e2e-sa")
    with pytest.raises(PermissionDenied) as info:
        dok.launcher.execute(env, namespace=namespace, image="localhost:5999/dok-e2e/never-pulled:1")
    assert "service account 'default'" in info.value.message and "may not create pods" in info.value.message, \
        info.value.message
    assert not cluster.batch.list_namespaced_job(namespace).items
    with pytest.raises(Exception, match="service account 'nobody' does not exist"):
        dok.launcher.execute(env.with_image(service_account="nobody"), namespace=namespace,
                             image="localhost:5999/dok-e2e/never-pulled:1")
