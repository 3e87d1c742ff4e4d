"""Worker pod manifests: pure functions from the job pod's own spec and the runner's settings to dicts.

A worker pod inherits from the job pod (read once through the API): imagePullSecrets, nodeSelector,
tolerations, the pod securityContext and the user's environment variables (plain values, secretKeyRef,
configMapKeyRef and envFrom — never the launcher's DOK_* settings nor the job pod's downward-API fields).
It adds what makes it safe and disposable: a restricted securityContext (UID 1000, non-root, no privilege
escalation, all capabilities dropped, RuntimeDefault seccomp, read-only root filesystem with an emptyDir at
/tmp), no service-account token, `restartPolicy: Never`, a short grace period, the run's labels, and an
ownerReference to the job pod so the garbage collector removes workers if the job pod disappears.
Its container gets the run's `worker_resources` (dok.core.resources: the defaults and why), and the worker
(`python -m dok.runner.worker`) follows them: `--nthreads` from the CPU limit/request, `--memory-limit` = the
container's memory limit, `--resources GPU=N` for N GPUs. The run's worker placement (`worker_node_selector`,
`worker_tolerations`, `worker_affinity`; unset: the job pod's), `labels`, `annotations`, `priority_class` and
`worker_template` (dok.core.podtemplate's merge rules) are applied last (`WorkerPodSettings`).
With `processes` P > 1 (RunSpec.worker_processes) the pod runs P Dask workers (`--processes P`, named
`<pod>/<i>`), each with an equal share of the threads, memory limit and GPUs (`dok.core.resources.process_share`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dok.core.labels import run_labels
from dok.core.names import run_object_name
from dok.core.podsecurity import RUN_AS_USER, restricted_container_security_context, restricted_violations
from dok.core.podtemplate import merge_pod_template
from dok.core.resources import dask_worker_resources, process_share, worker_memory_limit, worker_nthreads
from dok.runner.worker import WorkerArgs, worker_argv

from .exceptions import ConfigError

WORKER_COMPONENT = "worker"
WORKER_CONTAINER = "worker"
TERMINATION_GRACE_SECONDS = 5
_MAX_NAME = 63

DRAIN_MODULE = "dok.runner.drain"  # the worker pods' preStop hook (dok/runner/drain.py)


@dataclass(frozen=True, kw_only=True)
class WorkerPodSettings:
    """The run's settings for worker pods (RunSpec's `worker_*`, `labels`, `annotations`, `priority_class`,
    `worker_template`); a placement left None is taken from the job pod."""

    node_selector: Mapping[str, str] | None = None
    tolerations: tuple[Mapping[str, Any], ...] | None = None
    affinity: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    priority_class: str | None = None
    template: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, spec: Any) -> WorkerPodSettings:
        """From a RunSpec."""
        return cls(node_selector=spec.worker_node_selector, tolerations=spec.worker_tolerations,
                   affinity=spec.worker_affinity, labels=dict(spec.labels), annotations=dict(spec.annotations),
                   priority_class=spec.priority_class, template=spec.worker_template)


@dataclass(frozen=True, kw_only=True)
class JobPodTemplate:
    """What worker pods copy from the job pod (see `job_pod_template`)."""

    owner_name: str
    owner_uid: str
    image_pull_secrets: tuple[dict[str, Any], ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    env: tuple[dict[str, Any], ...] = ()
    env_from: tuple[dict[str, Any], ...] = ()
    service_account_name: str | None = None


def job_pod_template(pod: Mapping[str, Any], *, owner_name: str | None = None,
                     owner_uid: str | None = None) -> JobPodTemplate:
    """Extract from a job pod (API JSON, camelCase) what its worker pods inherit."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    container = next((c for c in containers if any(e.get("name") == "DOK_IDENTIFIER" for e in c.get("env") or [])),
                     containers[0] if containers else {})
    return JobPodTemplate(
        owner_name=owner_name or meta.get("name", ""),
        owner_uid=owner_uid or meta.get("uid", ""),
        image_pull_secrets=tuple(spec.get("imagePullSecrets") or ()),
        node_selector=dict(spec.get("nodeSelector") or {}),
        tolerations=tuple(spec.get("tolerations") or ()),
        affinity=dict(spec.get("affinity") or {}),
        pod_security_context=dict(spec.get("securityContext") or {}),
        env=tuple(user_env(container.get("env") or ())),
        env_from=tuple(container.get("envFrom") or ()),
        service_account_name=None,  # workers never talk to the API: no token, default account
    )


def user_env(env: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The user's variables of the job container: drop the launcher's DOK_* settings and downward-API fields
    (they describe the job pod, not the worker); keep plain values, secretKeyRef and configMapKeyRef."""
    out = []
    for var in env:
        name = var.get("name", "")
        if not name or name.startswith("DOK_"):
            continue
        value_from = var.get("valueFrom") or {}
        if "fieldRef" in value_from or "resourceFieldRef" in value_from:
            continue
        out.append(dict(var))
    return out


def worker_name_prefix(*, flow_name: str, identifier: str) -> str:
    """`dok-<flow>-<short id>-worker-`, the flow part shortened so that names stay ≤ 63 characters."""
    return run_object_name(flow_name=flow_name, identifier=identifier, suffix="-worker-", reserve=5)  # 5 digits


def worker_pod_name(*, flow_name: str, identifier: str, number: int) -> str:
    """`dok-<flow>-<short id>-worker-<n>`: a valid DNS-1123 label of at most 63 characters."""
    name = f"{worker_name_prefix(flow_name=flow_name, identifier=identifier)}{number}"
    if len(name) > _MAX_NAME:
        raise ValueError(f"worker number {number} makes the pod name {name!r} longer than {_MAX_NAME}")
    return name


def worker_command(*, scheduler_address: str, name: str, nthreads: int, death_timeout: float,
                   memory_limit: int | None = None, resources: Mapping[str, float] | None = None,
                   processes: int = 1) -> list[str]:
    """`python -m dok.runner.worker` for one pod (dok.runner.worker: one Dask worker without the `dask worker`
    CLI's start-up cost, behaving as `dask worker --no-nanny --no-dashboard`): no nanny (the pod is the unit
    of restart), no dashboard, scratch in the /tmp emptyDir, and `--death-timeout` as the last fallback.
    `memory_limit` (bytes): the container's memory limit, so that Dask spills and pauses before the kernel
    OOM-kills the pod (without it Dask's "auto" takes the cgroup limit x nthreads / host cores).
    `resources`: Dask worker resources (GPU=N), for tasks declared @task(resources=...). `processes`: Dask
    workers in the pod, each with all of the above (dok.runner.worker)."""
    return worker_argv(WorkerArgs(scheduler_address=scheduler_address, name=name, nthreads=nthreads,
                                  death_timeout=death_timeout, memory_limit=memory_limit, local_directory="/tmp",
                                  resources=tuple(sorted((k, float(v)) for k, v in (resources or {}).items())),
                                  processes=processes))



def _pod_security_context(inherited: Mapping[str, Any]) -> dict[str, Any]:
    ctx = dict(inherited)
    ctx.update({"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})
    ctx.setdefault("runAsUser", RUN_AS_USER)
    ctx.setdefault("runAsGroup", RUN_AS_USER)
    ctx.setdefault("fsGroup", RUN_AS_USER)
    if ctx["runAsUser"] == 0:
        ctx["runAsUser"] = RUN_AS_USER
    return ctx


def worker_pod_manifest(*, name: str, namespace: str, image: str, scheduler_address: str, identifier: str,
                        flow_name: str, template: JobPodTemplate, nthreads: int | None = None,
                        death_timeout: float = 60.0, resources: Mapping[str, Any] | None = None,
                        image_pull_policy: str = "IfNotPresent",
                        termination_grace_seconds: int = TERMINATION_GRACE_SECONDS,
                        pod: WorkerPodSettings | None = None, processes: int = 1) -> dict[str, Any]:
    """The v1 Pod for one Dask worker named `name` (pod name = Dask worker name = SpecCluster spec name).
    `resources`: the container's requests/limits (RunSpec.worker_resources; None or {} = none). The worker's
    threads follow its CPU (`dok.core.resources.worker_nthreads`) unless `nthreads` is given, its Dask memory
    limit follows the container's memory limit and its GPUs give it Dask resources (`--resources GPU=N`), all
    read after `pod.template` is merged in (dok.core.podtemplate), so a template's GPU counts too.
    `processes` > 1: that many Dask workers in the pod, each with `nthreads` threads (default: its share of
    the CPU) and its share of the memory limit and GPUs."""
    pod = pod or WorkerPodSettings()
    resources = {k: dict(v) for k, v in (resources or {}).items() if v}
    labels = run_labels(identifier=identifier, flow_name=flow_name, component=WORKER_COMPONENT)
    env = [dict(v) for v in template.env]
    env += [{"name": "DOK_IDENTIFIER", "value": identifier},
            {"name": "DOK_FLOW_NAME", "value": flow_name},
            {"name": "DOK_WORKER_NAME", "value": name},
            {"name": "DOK_SCHEDULER_ADDRESS", "value": scheduler_address},
            {"name": "DOK_DRAIN_TIMEOUT", "value": str(max(1, termination_grace_seconds - 2))},
            {"name": "HOME", "value": "/tmp"}]
    if processes > 1:  # the preStop drain retires every worker process of the pod
        env.append({"name": "DOK_WORKER_PROCESSES", "value": str(processes)})
    env = _dedupe_env(env)
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "env": env,
        "securityContext": restricted_container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # Deleted by anyone but dok (node drain, spot reclaim, kubectl delete): ask the scheduler to retire
        # this worker first, so its results move to the others instead of being recomputed.
        "lifecycle": {"preStop": {"exec": {"command": ["python", "-m", DRAIN_MODULE]}}},
    }
    if template.env_from:
        container["envFrom"] = [dict(e) for e in template.env_from]
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": termination_grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security_context(template.pod_security_context),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if template.image_pull_secrets:
        spec["imagePullSecrets"] = [dict(s) for s in template.image_pull_secrets]
    node_selector = template.node_selector if pod.node_selector is None else pod.node_selector
    tolerations = template.tolerations if pod.tolerations is None else pod.tolerations
    affinity = template.affinity if pod.affinity is None else pod.affinity
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    if affinity:
        spec["affinity"] = dict(affinity)
    if pod.priority_class:
        spec["priorityClassName"] = pod.priority_class
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Pod",
                "name": template.owner_name,
                "uid": template.owner_uid,
                "controller": False,
                "blockOwnerDeletion": False,
            }],
        },
        "spec": spec,
    }
    manifest = merge_pod_template(manifest, {"metadata": {"labels": dict(pod.labels),
                                                          "annotations": dict(pod.annotations)}},
                                  container=WORKER_CONTAINER, setting="labels/annotations")
    manifest = merge_pod_template(manifest, pod.template, container=WORKER_CONTAINER, setting="worker_template")
    merged = manifest["spec"]["containers"][0]
    final = merged.get("resources") or {}
    threads, memory, dask_resources = process_share(nthreads=worker_nthreads(final),
                                                    memory_limit=worker_memory_limit(final),
                                                    resources=dask_worker_resources(final), processes=processes)
    merged["command"] = worker_command(
        scheduler_address=scheduler_address, name=name, nthreads=nthreads if nthreads is not None else threads,
        death_timeout=death_timeout, memory_limit=memory, resources=dask_resources, processes=processes)
    return manifest


def check_worker_pod(pod: Mapping[str, Any], *, loose: bool = False, processes: int = 1) -> dict[str, float]:
    """Refuse a worker pod that Pod Security Admission "restricted" would refuse (unless the worker template
    took over the security context: `loose`); return the Dask worker resources of each of its `processes`
    workers (GPU=N for N GPUs in a one-worker pod)."""
    if not loose:
        problems = restricted_violations(pod["spec"], annotations=pod["metadata"].get("annotations"))
        if problems:
            raise ConfigError("the worker pods would break Pod Security Admission 'restricted': " + "; ".join(problems),
                              hint="the worker template adds something 'restricted' refuses: remove it, or annotate "
                                   "the template with dok.dev/security-context: template to take over the security "
                                   "context on purpose")
    resources = dask_worker_resources(pod["spec"]["containers"][0].get("resources") or {})
    return process_share(nthreads=1, memory_limit=None, resources=resources, processes=processes)[2]


def _dedupe_env(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Later entries win (Kubernetes would keep both and let the last one win; keep the list clean)."""
    seen: dict[str, dict[str, Any]] = {}
    for var in env:
        seen.pop(var["name"], None)
        seen[var["name"]] = var
    return list(seen.values())
