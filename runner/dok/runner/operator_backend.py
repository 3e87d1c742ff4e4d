"""`OperatorWorkerBackend`: Dask workers managed by the dask-kubernetes operator (`backend="operator"`).

dok keeps its model: the scheduler runs in the job pod, dok's SpecCluster + Adaptive decide how many workers
and which one goes. The operator owns the worker pods' lifecycle:
- one `DaskCluster` per run (owner: the job pod, so deleting the job deletes everything), and its default
  worker group (0 replicas) made by dok first, so that it has that owner too. Its scheduler
  Service selects the job pod, so the operator's own calls to "the scheduler" reach dok's in-process one. The
  operator insists on a scheduler Deployment: it is a placeholder pod (a sleeping process, minimal requests);
- one `DaskWorkerGroup` (replicas 1) per dok worker, named as the worker: its pod spec is exactly the pod the
  default backend would create. The operator turns it into a Deployment, so a worker pod that is deleted or
  evicted comes back under the same Dask worker name.
Why not a DaskAutoscaler or one scaled group: the operator's scale-down picks the workers to retire itself
(and its autoscaler polls every 5 s with a 15 s cooldown), which would fight dok's Adaptive; a group per
worker keeps `delete(name)` exact. See docs/operator.md.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import Any

from dok.core.labels import COMPONENT_LABEL, IDENTIFIER_LABEL, run_labels
from dok.kube import Kube, labels_of
from dok.runner.backend import PodWorkerBackend
from dok.runner.config import RunnerConfig
from dok.runner.health import WorkerObservation, observe_pod
from dok.runner.manifests import WORKER_COMPONENT

GROUP, VERSION = "kubernetes.dask.org", "v1"
CLUSTERS, WORKER_GROUPS = "daskclusters", "daskworkergroups"
REQUIRED_RESOURCES = (CLUSTERS, WORKER_GROUPS)
CRD_NAMES = tuple(f"{p}.{GROUP}" for p in REQUIRED_RESOURCES)
INSTALL_COMMAND = "tools/bazel run //tools:cluster -- operator install"
WORKER_LABEL = "dok.dev/worker"                 # the Dask worker name, on the operator's worker pods
CLUSTER_COMPONENT = "dask-cluster"
PLACEHOLDER_COMPONENT = "operator-scheduler-placeholder"
JOB_COMPONENT = "job"                           # the job pod's component label (launcher's job_manifest)


def cluster_name_of(identifier: str) -> str:
    """The run's DaskCluster name (a DNS label; the operator appends '-scheduler')."""
    return f"dok-{identifier.replace('-', '')[:20]}"


def placeholder_pod_spec(image: str) -> dict[str, Any]:
    """A pod that only sleeps (minimal requests): the scheduler Deployment the operator insists on."""
    security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
    return {
        "terminationGracePeriodSeconds": 0, "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "placeholder", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", "import signal; signal.pause()"],
                        "securityContext": security,
                        "resources": {"requests": {"cpu": "1m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}}],
    }


def dask_cluster_manifest(*, identifier: str, flow_name: str, namespace: str, image: str, scheduler_port: int,
                          owner: dict[str, Any]) -> dict[str, Any]:
    """The run's DaskCluster: scheduler Service -> the job pod's named port `scheduler` (the CRD types
    targetPort as a string), a placeholder scheduler pod, no default workers."""
    name = cluster_name_of(identifier)
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DaskCluster",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": [owner],
                     "labels": run_labels(identifier=identifier, flow_name=flow_name, component=CLUSTER_COMPONENT)},
        "spec": {
            "scheduler": {
                "metadata": {"labels": {COMPONENT_LABEL: PLACEHOLDER_COMPONENT}},
                "spec": placeholder_pod_spec(image),
                "service": {"type": "ClusterIP",
                            "selector": {IDENTIFIER_LABEL: identifier, COMPONENT_LABEL: JOB_COMPONENT},
                            "ports": [{"name": "tcp-comm", "port": scheduler_port, "targetPort": "scheduler",
                                       "protocol": "TCP"}]},
            },
            "worker": {"replicas": 0, "spec": placeholder_pod_spec(image)},
        },
    }


def default_worker_group_manifest(cluster: dict[str, Any]) -> dict[str, Any]:
    """The cluster's default worker group (0 replicas), created by dok BEFORE the DaskCluster: the operator then
    skips creating its own, which it does without an owner (adopted later, so it is orphaned when the cluster
    goes first, e.g. when the job pod is deleted). Ours is owned by the job pod like everything else."""
    meta = cluster["metadata"]
    labels = dict(meta["labels"]) | {COMPONENT_LABEL: CLUSTER_COMPONENT}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DaskWorkerGroup",
        "metadata": {"name": f"{meta['name']}-default", "namespace": meta["namespace"], "labels": labels,
                     "ownerReferences": list(meta["ownerReferences"])},
        "spec": {"cluster": meta["name"], "worker": copy.deepcopy(cluster["spec"]["worker"])},
    }


def worker_group_manifest(pod: dict[str, Any], *, cluster_name: str, owner: dict[str, Any]) -> dict[str, Any]:
    """A DaskWorkerGroup of one replica whose pod is `pod` (the default backend's worker pod manifest)."""
    meta = pod["metadata"]
    name = meta["name"]
    spec = copy.deepcopy(pod["spec"])
    scheduler = next((e["value"] for e in spec["containers"][0].get("env", []) if e["name"] == "DOK_SCHEDULER_ADDRESS"),
                     None)
    for container in spec["containers"]:
        env = [e for e in container.get("env", []) if e["name"] not in ("DASK_WORKER_NAME", "DASK_SCHEDULER_ADDRESS")]
        env.append({"name": "DASK_WORKER_NAME", "value": name})  # the operator would set its own otherwise
        if scheduler:
            env.append({"name": "DASK_SCHEDULER_ADDRESS", "value": scheduler})
        container["env"] = env
    spec.pop("restartPolicy", None)  # a Deployment's pods must be restartPolicy Always (the default)
    labels = dict(meta.get("labels") or {}) | {WORKER_LABEL: name}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "DaskWorkerGroup",
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels, "ownerReferences": [owner]},
        "spec": {"cluster": cluster_name,
                 "worker": {"replicas": 1, "metadata": {"labels": labels,
                                                        "annotations": dict(meta.get("annotations") or {})},
                            "spec": spec}},
    }


def by_worker(observations: list[tuple[str, WorkerObservation]]) -> list[WorkerObservation]:
    """One observation per Dask worker name: the operator's pods carry the worker name in a label, and a
    replaced pod (Deployment) may overlap its deleting predecessor, which is then not reported."""
    chosen: dict[str, WorkerObservation] = {}
    for worker, obs in observations:
        obs = dataclasses.replace(obs, name=worker)
        if worker not in chosen or chosen[worker].phase == "deleting":
            chosen[worker] = obs
    return list(chosen.values())


class OperatorWorkerBackend(PodWorkerBackend):
    """Workers as DaskWorkerGroups of the run's DaskCluster (see the module docstring)."""

    description = "dask-kubernetes operator"

    def __init__(self, *, config: RunnerConfig, kube: Kube, delete_grace_seconds: int = 1) -> None:
        super().__init__(config=config, kube=kube, delete_grace_seconds=delete_grace_seconds)
        self.cluster_name = cluster_name_of(config.spec.identifier)
        self.group_selector = f"{IDENTIFIER_LABEL}={config.spec.identifier},{COMPONENT_LABEL}={WORKER_COMPONENT}"
        self._cluster_created = False
        self._owner: dict[str, Any] = {}

    async def prepare(self) -> None:
        await super().prepare()
        c = self.config
        self._owner = {"apiVersion": "v1", "kind": "Pod", "name": c.pod_name, "uid": c.pod_uid,
                       "blockOwnerDeletion": False}
        manifest = dask_cluster_manifest(identifier=c.spec.identifier, flow_name=c.spec.flow_name,
                                         namespace=c.namespace, image=c.image, scheduler_port=c.spec.scheduler_port,
                                         owner=self._owner)
        if not self._cluster_created:
            await asyncio.to_thread(self.kube.create_custom, GROUP, VERSION, WORKER_GROUPS,
                                    default_worker_group_manifest(manifest))
            await asyncio.to_thread(self.kube.create_custom, GROUP, VERSION, CLUSTERS, manifest)
            self._cluster_created = True

    async def create(self, name: str, scheduler_address: str) -> None:
        if self.template is None:
            await self.prepare()
        group = worker_group_manifest(self.manifest(name, scheduler_address), cluster_name=self.cluster_name,
                                      owner=self._owner)
        from dok.kube import Conflict

        try:
            await asyncio.to_thread(self.kube.create_custom, GROUP, VERSION, WORKER_GROUPS, group)
        except Conflict:
            existing = await asyncio.to_thread(self.kube.list_custom, GROUP, VERSION, WORKER_GROUPS,
                                               self.config.namespace, f"{WORKER_LABEL}={name}")
            if not any(labels_of(g).get(IDENTIFIER_LABEL) == self.config.spec.identifier for g in existing):
                raise

    async def delete(self, name: str) -> bool:
        """Delete the worker's group (the operator's Deployment and its pod follow), then the pod itself with a
        short grace period so the worker stops now rather than when the garbage collector gets to it."""
        found = await asyncio.to_thread(self.kube.delete_custom, GROUP, VERSION, WORKER_GROUPS, self.config.namespace,
                                        name)
        for pod in await asyncio.to_thread(self.kube.list_pods, self.config.namespace, f"{WORKER_LABEL}={name}"):
            await asyncio.to_thread(self.kube.delete_pod, self.config.namespace, pod["metadata"]["name"],
                                    grace_period_seconds=self.delete_grace_seconds)
        return found

    async def observe(self) -> list[WorkerObservation]:
        pods = await asyncio.to_thread(self._list)
        pairs = [(labels_of(p).get(WORKER_LABEL) or p["metadata"]["name"], observe_pod(p)) for p in pods]
        return by_worker(pairs)

    async def _pod_name(self, name: str) -> str:
        pods = await asyncio.to_thread(self.kube.list_pods, self.config.namespace, f"{WORKER_LABEL}={name}")
        live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        return (live or pods or [{"metadata": {"name": name}}])[0]["metadata"]["name"]

    async def diagnostics(self, name: str, *, log: bool = True) -> str:
        return await super().diagnostics(await self._pod_name(name), log=log)

    async def worker_log(self, name: str) -> str:
        return await super().worker_log(await self._pod_name(name))

    async def cleanup(self) -> list[str]:
        """Delete the run's worker groups and DaskCluster (the operator's objects follow by owner), then every
        pod of the run but the job pod, again while the garbage collector has not yet removed the Deployments
        that would recreate them (bounded: `CLEANUP_SECONDS`; owners remove whatever is left after that)."""
        ns = self.config.namespace
        groups = await asyncio.to_thread(self.kube.list_custom, GROUP, VERSION, WORKER_GROUPS, ns,
                                         f"{IDENTIFIER_LABEL}={self.config.spec.identifier}")
        deleted = [g["metadata"]["name"] for g in groups
                   if await asyncio.to_thread(self.kube.delete_custom, GROUP, VERSION, WORKER_GROUPS, ns,
                                              g["metadata"]["name"])]
        await asyncio.to_thread(self.kube.delete_custom, GROUP, VERSION, CLUSTERS, ns, self.cluster_name)
        selector = f"{IDENTIFIER_LABEL}={self.config.spec.identifier},{COMPONENT_LABEL}!={JOB_COMPONENT}"
        deadline = asyncio.get_running_loop().time() + CLEANUP_SECONDS
        while True:
            pods = await asyncio.to_thread(self.kube.list_pods, ns, selector)
            if not pods or asyncio.get_running_loop().time() > deadline:
                break
            for pod in pods:
                if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                    await asyncio.to_thread(self.kube.delete_pod, ns, pod["metadata"]["name"], grace_period_seconds=0)
            await asyncio.sleep(0.5)
        return deleted


CLEANUP_SECONDS = 20.0  # how long the final cleanup keeps deleting pods the operator's ReplicaSets recreate
