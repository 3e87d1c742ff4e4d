"""The operator backend's pure parts: the DaskCluster and DaskWorkerGroup it writes, observations by worker."""

from __future__ import annotations

from dok.core.labels import COMPONENT_LABEL, IDENTIFIER_LABEL
from dok.runner.health import WorkerObservation
from dok.runner.operator_backend import (WORKER_LABEL, by_worker, cluster_name_of, dask_cluster_manifest,
                                         default_worker_group_manifest, worker_group_manifest)

OWNER = {"apiVersion": "v1", "kind": "Pod", "name": "job-pod", "uid": "u-1"}


def test_cluster_service_selects_the_job_pod_and_is_owned_by_it() -> None:
    m = dask_cluster_manifest(identifier="ab-cd", flow_name="f", namespace="ns", image="img:1", scheduler_port=9999,
                              owner=OWNER)
    assert m["kind"] == "DaskCluster" and m["metadata"]["name"] == cluster_name_of("ab-cd") == "dok-abcd"
    assert m["metadata"]["ownerReferences"] == [OWNER]
    assert m["metadata"]["labels"][IDENTIFIER_LABEL] == "ab-cd"
    service = m["spec"]["scheduler"]["service"]
    assert service["selector"] == {IDENTIFIER_LABEL: "ab-cd", COMPONENT_LABEL: "job"}
    assert service["ports"][0] == {"name": "tcp-comm", "port": 9999, "targetPort": "scheduler", "protocol": "TCP"}
    assert m["spec"]["worker"]["replicas"] == 0
    default = default_worker_group_manifest(m)
    assert default["metadata"]["name"] == "dok-abcd-default"  # the name the operator would otherwise create
    assert default["metadata"]["ownerReferences"] == [OWNER] and default["spec"]["cluster"] == "dok-abcd"
    assert default["spec"]["worker"]["replicas"] == 0


def test_worker_group_carries_the_pod_spec_and_the_worker_name() -> None:
    pod = {"metadata": {"name": "w-0", "namespace": "ns", "labels": {IDENTIFIER_LABEL: "x"}},
           "spec": {"restartPolicy": "Never", "containers": [
               {"name": "worker", "env": [{"name": "DOK_SCHEDULER_ADDRESS", "value": "tcp://1.2.3.4:8786"}]}]}}
    g = worker_group_manifest(pod, cluster_name="dok-x", owner=OWNER)
    assert g["metadata"]["name"] == "w-0" and g["spec"]["cluster"] == "dok-x"
    worker = g["spec"]["worker"]
    assert worker["replicas"] == 1
    assert worker["metadata"]["labels"] == {IDENTIFIER_LABEL: "x", WORKER_LABEL: "w-0"}
    assert "restartPolicy" not in worker["spec"]
    env = {e["name"]: e["value"] for e in worker["spec"]["containers"][0]["env"]}
    assert env["DASK_WORKER_NAME"] == "w-0" and env["DASK_SCHEDULER_ADDRESS"] == "tcp://1.2.3.4:8786"
    assert pod["spec"]["restartPolicy"] == "Never"  # the input is not modified


def test_observations_are_per_worker_and_prefer_the_live_pod() -> None:
    old = WorkerObservation(name="pod-a", phase="deleting")
    new = WorkerObservation(name="pod-b", phase="running")
    other = WorkerObservation(name="pod-c", phase="pending")
    result = by_worker([("w-0", old), ("w-0", new), ("w-1", other)])
    assert [(o.name, o.phase) for o in result] == [("w-0", "running"), ("w-1", "pending")]
