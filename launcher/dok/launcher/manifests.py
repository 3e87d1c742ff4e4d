"""Pure manifest builders: the run's Job and the runner's ServiceAccount, Role and RoleBinding, as dicts.

No I/O here: everything the cluster receives is built by these functions and unit-tested. The Job runs
one pod (restartPolicy Never, backoffLimit 0) whose container is the runner (`python -m dok.runner
/opt/dok/flow.dokflow`) under a restricted security context (non-root UID 1000, no privilege escalation,
all capabilities dropped, RuntimeDefault seccomp, read-only root filesystem, writable emptyDir at /tmp).
Its environment follows DEVELOPERS.md "Job pod environment"; user secrets are `secretKeyRef`s, never
values. The Role grants exactly what the runner uses, in one namespace. The pod is checked against Pod
Security Admission "restricted" (`dok.core.podsecurity.restricted_violations`) before the Job is returned,
and a setting too large for one environment variable (`MAX_ENV_STRING_BYTES`, e.g. huge parameters) is
refused here rather than failing the container's start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dok.core import labels as core_labels
from dok.core.names import (BUNDLE_PATH, DASHBOARD_PORT, DNS_LABEL_HINT, ENV_NAME_HINT, IMAGE_REFERENCE_HINT,
                            RUNNER_MODULE, SCHEDULER_PORT, InvalidName, is_dns_label, is_env_name, is_image_reference,
                            is_label_value, looks_secret, run_object_name, split_secret_ref)
from dok.core.podtemplate import PodTemplateError, loosened, merge_pod_template
from dok.core.podsecurity import (restricted_container_security_context, restricted_pod_security_context,
                                  restricted_violations)
from dok.core.runspec import POD_FIELD_ENV, RUNNER_SERVICE_ACCOUNT, RunSpec

from .exceptions import ConfigError, UsageError

__all__ = ["BUNDLE_PATH", "IMAGE_REFERENCE_HINT", "SCHEDULER_PORT", "looks_secret"]  # re-exported names of core

RUNNER_NAME = RUNNER_SERVICE_ACCOUNT  # ServiceAccount, Role and RoleBinding share it
RUNNER_COMMAND = ("python", "-m", RUNNER_MODULE, BUNDLE_PATH)
CONTAINER_NAME = "runner"

# What the runner does with the API, and nothing else (see runner: worker pods, their logs, their events).
RUNNER_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
    # its own Job: read it, and shorten its ttlSecondsAfterFinished when the flow succeeded
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "patch"]},
)
# backend "operator" only (docs/operator.md): the run's DaskCluster and one DaskWorkerGroup per worker. Not in
# the default Role: whoever creates a Role must hold its rights (RBAC's escalation check), and a namespace admin
# on a cluster without the operator does not hold rights on kubernetes.dask.org.
OPERATOR_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ["kubernetes.dask.org"], "resources": ["daskclusters", "daskworkergroups"],
     "verbs": ["create", "delete", "list"]},
)


def runner_rules(backend: str = "pods") -> tuple[dict[str, Any], ...]:
    """What the runner's ServiceAccount must be allowed for a run on `backend`."""
    return RUNNER_RULES + (OPERATOR_RULES if backend == "operator" else ())

# backend "operator" (docs/operator.md): the dask-kubernetes custom resources a run creates
OPERATOR_GROUP, OPERATOR_VERSION = "kubernetes.dask.org", "v1"
OPERATOR_RESOURCES = ("daskclusters", "daskworkergroups")

PARAMETERS_ANNOTATION = core_labels.FLOW_LABEL.split("/")[0] + "/parameters"

SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"

# Linux refuses to exec a process with one environment string ("NAME=value\0") longer than this
# (MAX_ARG_STRLEN, 32 pages): the container would never start (E2BIG). It also keeps the parameters
# annotation below Kubernetes' 256 KiB limit on all annotations of an object.
MAX_ENV_STRING_BYTES = 128 * 1024


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    """An environment variable taken from a Kubernetes Secret: `secret` = Secret name, `key` = data key."""

    secret: str
    key: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """`SECRET:KEY` (or `SECRET/KEY`)."""
        secret, key = _split_secret_ref(text)
        return cls(secret=secret, key=key)

    def validate(self) -> None:
        _split_secret_ref((self.secret, self.key))

    def __str__(self) -> str:
        return f"{self.secret}:{self.key}"


def _split_secret_ref(ref: str | tuple[str, str]) -> tuple[str, str]:
    """core's check of a secret reference, as a UsageError."""
    try:
        return split_secret_ref(ref)
    except InvalidName as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def validate_namespace(namespace: str) -> None:
    if not is_dns_label(namespace):
        raise UsageError(f"invalid namespace {namespace!r}", hint=DNS_LABEL_HINT)


def validate_env_name(name: str) -> None:
    if not is_env_name(name):
        raise UsageError(f"invalid environment variable name {name!r}", hint=ENV_NAME_HINT)


def validate_image_reference(image: str) -> None:
    """`registry:5000/name:tag`, `name:tag`, `name@sha256:…` (the grammar docker and the kubelet accept)."""
    if not image or not is_image_reference(image):
        raise UsageError(f"invalid image reference {image!r}", hint=IMAGE_REFERENCE_HINT)


def validate_identifier(identifier: str) -> None:
    """A run identifier is a label value (`dok run` makes it a UUID): refuse others before asking the cluster."""
    if not is_label_value(identifier):
        raise UsageError(f"invalid run identifier {identifier!r}",
                         hint="a run identifier is the UUID `dok run` printed (see `dok list`), e.g. "
                              "0f8fad5b-d9cb-469f-a165-70867728950e: at most 63 letters, digits, '-', '_' "
                              "or '.', starting and ending with a letter or digit")


def job_name(flow_name: str, identifier: str) -> str:
    """`dok-<flow slug>-<first 8 of the identifier>`, a DNS-1123 label short enough for pod names."""
    return run_object_name(flow_name=flow_name, identifier=identifier, reserve=6)


def run_labels(identifier: str, flow_name: str, component: str) -> dict[str, str]:
    return dict(core_labels.run_labels(identifier=identifier, flow_name=flow_name, component=component))


def rbac_labels(component: str = "runner-rbac") -> dict[str, str]:
    """Labels for the per-namespace RBAC objects (shared by runs, so no flow/identifier)."""
    return {core_labels.MANAGED_BY_LABEL: "dok", core_labels.COMPONENT_LABEL: component}




def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def job_env(spec: RunSpec) -> list[dict[str, Any]]:
    """The job pod's environment: the run's settings (`spec.to_env()`), the pod's own name, UID and IP (the
    downward API, `POD_FIELD_ENV`) and the user's Secret references (`secretKeyRef`s, never values)."""
    env: list[dict[str, Any]] = [{"name": name, "value": value} for name, value in spec.to_env().items()]
    for var in env:
        size = len(f"{var['name']}={var['value']}".encode()) + 1
        if size > MAX_ENV_STRING_BYTES:
            raise UsageError(f"{var['name']} would be {size} bytes, more than the {MAX_ENV_STRING_BYTES} bytes Linux "
                             "allows one environment variable (the job pod could not start)",
                             hint="pass large inputs by reference (a path or URL a task loads), not as parameters")
    env += [_field_env(name, path) for name, path in POD_FIELD_ENV.items()]
    for name, (secret, key) in spec.secret_refs.items():
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return env


def job_name_of(spec: RunSpec) -> str:
    return job_name(spec.flow_name, spec.identifier)


def job_manifest(spec: RunSpec) -> dict[str, Any]:
    """The batch/v1 Job for one run (its namespace resolved, its image built)."""
    if spec.namespace is None or spec.image is None:
        raise ConfigError("a run needs a namespace and an image before its Job can be written",
                          hint="the launcher resolves the namespace when it connects; build the image first")
    labels = run_labels(spec.identifier, spec.flow_name, "job")
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": list(RUNNER_COMMAND),
        "env": job_env(spec),
        "ports": [{"name": "scheduler", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
                  {"name": "dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"}],
        "securityContext": restricted_container_security_context(),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.resources:
        container["resources"] = dict(spec.resources)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": spec.service_account_name,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
        "securityContext": restricted_pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in spec.image_pull_secrets]
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    if spec.affinity:
        pod_spec["affinity"] = dict(spec.affinity)
    if spec.priority_class:
        pod_spec["priorityClassName"] = spec.priority_class
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        # The job pod holds the scheduler and the run's state: cluster autoscalers must not evict it to
        # consolidate nodes (worker pods may go: they drain first and are replaced).
        "template": _pod_template_of(spec, labels, pod_spec),
    }
    if not loosened(spec.job_template):
        _check_restricted(job_spec["template"], from_template=bool(spec.job_template))
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_failure is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_failure
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name_of(spec), "namespace": spec.namespace, "labels": dict(labels),
                     "annotations": {PARAMETERS_ANNOTATION: json.dumps(dict(spec.parameters), sort_keys=True)}},
        "spec": job_spec,
    }


def _pod_template_of(spec: RunSpec, labels: Mapping[str, str], pod_spec: dict[str, Any]) -> dict[str, Any]:
    """The Job's pod template: dok's labels and annotations, the run's `labels`/`annotations` (dok's win: a
    clash is an error), then the run's `job_template` merged in (dok.core.podtemplate's rules)."""
    annotations = {SAFE_TO_EVICT_ANNOTATION: "false"}
    user = {"metadata": {"labels": dict(spec.labels), "annotations": dict(spec.annotations)}, "spec": {}}
    try:
        pod = merge_pod_template({"metadata": {"labels": dict(labels), "annotations": annotations},
                                  "spec": pod_spec}, user, container=CONTAINER_NAME, setting="labels/annotations")
        return merge_pod_template(pod, spec.job_template, container=CONTAINER_NAME, setting="job_template")
    except PodTemplateError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def _check_restricted(template: Mapping[str, Any], *, from_template: bool) -> None:
    """Refuse a job pod that Pod Security Admission "restricted" would refuse: the user's job template broke
    it (UsageError), or dok's own policy did (ConfigError, a bug in dok)."""
    problems = restricted_violations(template["spec"], annotations=template["metadata"].get("annotations"))
    if not problems:
        return
    message = "the job pod would break Pod Security Admission 'restricted': " + "; ".join(problems)
    if from_template:
        raise UsageError(message, hint="the job template adds something 'restricted' refuses: remove it, or annotate "
                                       "the template with dok.dev/security-context: template to take over the "
                                       "security context on purpose (namespaces enforcing 'restricted' refuse it)")
    raise ConfigError(message, hint="dok's pod security policy (dok.core.podsecurity) was changed: this is a bug in dok")


def service_account_manifest(namespace: str, name: str = RUNNER_NAME) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": rbac_labels()}}


def role_manifest(namespace: str, name: str = RUNNER_NAME, *, backend: str = "pods") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace, "labels": rbac_labels()},
            "rules": [dict(r, apiGroups=list(r["apiGroups"]), resources=list(r["resources"]),
                           verbs=list(r["verbs"])) for r in runner_rules(backend)]}


def role_binding_manifest(namespace: str, name: str = RUNNER_NAME) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace, "labels": rbac_labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]}


def missing_rules(rules: Sequence[Mapping[str, Any]] | None,
                  required: Sequence[Mapping[str, Any]] = RUNNER_RULES) -> list[str]:
    """Which `resource verb` pairs of `required` the given Role rules do not grant (core API group)."""
    granted: set[tuple[str, str, str]] = set()
    for rule in rules or ():
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                for verb in rule.get("verbs") or ():
                    granted.add((group, resource, verb))
    missing = []
    for rule in required:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if not any((g in (group, "*")) and (r in (resource, "*")) and (v in (verb, "*"))
                               for g, r, v in granted):
                        missing.append(f"{verb} {resource}")
    return missing
