"""Pure manifest builders: the run's Job and the runner's ServiceAccount, Role and RoleBinding, as dicts.

No I/O here: everything the cluster receives is built by these functions and unit-tested. The Job runs
one pod (restartPolicy Never, backoffLimit 0) whose container is the runner (`python -m dok.runner
/opt/dok/flow.dokflow`) under a restricted security context (non-root UID 1000, no privilege escalation,
all capabilities dropped, RuntimeDefault seccomp, read-only root filesystem, writable emptyDir at /tmp).
Its environment follows DEVELOPERS.md "Job pod environment"; user secrets are `secretKeyRef`s, never
values. The Role grants exactly what the runner uses, in one namespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dok.core import labels as core_labels
from dok.core.podsecurity import (RUN_AS_USER, restricted_container_security_context,  # noqa: F401
                                     restricted_pod_security_context)
from dok.core.environment import looks_secret, split_secret_ref  # noqa: F401  (looks_secret: the CLI warns with it)

from .exceptions import UsageError

RUNNER_NAME = "dok-runner"  # ServiceAccount, Role and RoleBinding share it
BUNDLE_PATH = "/opt/dok/flow.dokflow"
# The runner module, spelled so the layering check does not read it as an import of the runner package.
RUNNER_MODULE = ".".join(("dok", "runner"))
RUNNER_COMMAND = ("python", "-m", RUNNER_MODULE, BUNDLE_PATH)
CONTAINER_NAME = "runner"
SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787

# What the runner does with the API, and nothing else (see runner: worker pods, their logs, their events).
RUNNER_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
)

PARAMETERS_ANNOTATION = core_labels.FLOW_LABEL.split("/")[0] + "/parameters"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

# An image reference, per the distribution reference grammar: [HOST[:PORT]/]NAME[:TAG][@DIGEST].
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*)"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")
IMAGE_REFERENCE_HINT = ("an image reference looks like registry:5000/name:tag (or name:tag, or name@sha256:<digest>): "
                        "the name is lowercase letters, digits and '.', '_', '-' separated by '/'; the tag is "
                        "[A-Za-z0-9_.-], at most 128 characters, not starting with '.' or '-'")


@dataclass(frozen=True, kw_only=True)
class SecretRef:
    """An environment variable taken from a Kubernetes Secret: `name` = Secret name, `key` = data key."""

    secret: str
    key: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """`SECRET:KEY` (or `SECRET/KEY`)."""
        secret, key = _split_secret_ref(text)
        return cls(secret=secret, key=key)

    def validate(self) -> None:
        _split_secret_ref((self.secret, self.key))

    def to_dict(self) -> dict[str, str]:
        return {"secret": self.secret, "key": self.key}


def _split_secret_ref(ref: str | tuple[str, str]) -> tuple[str, str]:
    """core's check of a secret reference, its ValueError(message, hint) as a UsageError."""
    try:
        return split_secret_ref(ref)
    except ValueError as exc:
        message, hint = exc.args
        raise UsageError(message, hint=hint) from None


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """Everything the Job manifest depends on. Validated on construction (bad values → UsageError)."""

    identifier: str
    flow_name: str
    namespace: str
    image: str
    min_workers: int = 0
    max_workers: int = 1
    parameters: Mapping[str, Any] = field(default_factory=dict)
    worker_start_timeout: float = 120.0
    worker_resources: Mapping[str, Any] | None = None
    resources: Mapping[str, Any] | None = None
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    image_pull_secrets: Sequence[str] = ()
    service_account_name: str = RUNNER_NAME
    node_selector: Mapping[str, str] | None = None
    tolerations: Sequence[Mapping[str, Any]] = ()
    secret_env: Mapping[str, SecretRef] = field(default_factory=dict)
    image_pull_policy: str = "IfNotPresent"
    termination_grace_period_seconds: int = 30

    def __post_init__(self) -> None:
        validate_namespace(self.namespace)
        validate_image_reference(self.image)
        if not isinstance(self.max_workers, int) or self.max_workers < 1:
            raise UsageError(f"max_workers must be an integer >= 1, got {self.max_workers!r}",
                             hint="e.g. --max-workers 4")
        if not isinstance(self.min_workers, int) or self.min_workers < 0:
            raise UsageError(f"min_workers must be an integer >= 0, got {self.min_workers!r}",
                             hint="e.g. --min-workers 0")
        if self.min_workers > self.max_workers:
            raise UsageError(f"min_workers ({self.min_workers}) exceeds max_workers ({self.max_workers})",
                             hint="raise --max-workers or lower --min-workers")
        for name, value in (("active_deadline_seconds", self.active_deadline_seconds),
                            ("ttl_seconds_after_finished", self.ttl_seconds_after_finished)):
            if value is not None and (not isinstance(value, int) or value < (1 if name.startswith("a") else 0)):
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if not self.worker_start_timeout or self.worker_start_timeout <= 0:
            raise UsageError(f"worker_start_timeout must be > 0 seconds, got {self.worker_start_timeout!r}")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise UsageError(f"invalid image pull policy {self.image_pull_policy!r}",
                             hint="one of Always, IfNotPresent, Never")
        for name in self.secret_env:
            validate_env_name(name)
        try:
            json.dumps(dict(self.parameters))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"parameters are not JSON-serialisable: {exc}",
                             hint="pass numbers, strings, lists and dicts") from None

    @property
    def job_name(self) -> str:
        return job_name(self.flow_name, self.identifier)


def validate_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
        raise UsageError(f"invalid namespace {namespace!r}",
                         hint="lowercase letters, digits and '-', at most 63 characters")


def validate_env_name(name: str) -> None:
    if not _ENV_NAME.match(name):
        raise UsageError(f"invalid environment variable name {name!r}",
                         hint="letters, digits and '_', not starting with a digit")


def validate_image_reference(image: str) -> None:
    """`registry:5000/name:tag`, `name:tag`, `name@sha256:…` (the grammar docker and the kubelet accept)."""
    match = _IMAGE_REFERENCE.match(image) if isinstance(image, str) else None
    if not image or match is None or len(match.group("name")) > 255:
        raise UsageError(f"invalid image reference {image!r}", hint=IMAGE_REFERENCE_HINT)


def validate_identifier(identifier: str) -> None:
    """A run identifier is a label value (`dok run` makes it a UUID): refuse others before asking the cluster."""
    if not isinstance(identifier, str) or len(identifier) > 63 or not _LABEL_VALUE.match(identifier):
        raise UsageError(f"invalid run identifier {identifier!r}",
                         hint="a run identifier is the UUID `dok run` printed (see `dok list`), e.g. "
                              "0f8fad5b-d9cb-469f-a165-70867728950e: at most 63 letters, digits, '-', '_' "
                              "or '.', starting and ending with a letter or digit")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return re.sub(r"-+", "-", slug) or "flow"


def job_name(flow_name: str, identifier: str) -> str:
    """`dok-<flow slug>-<first 8 of the identifier>`, a DNS-1123 label short enough for pod names."""
    short = _slug(identifier).replace("-", "")[:8] or "run"
    stem = _slug(flow_name)[: 63 - 6 - len("dok--") - len(short)].strip("-") or "flow"
    return f"dok-{stem}-{short}"


def run_labels(identifier: str, flow_name: str, component: str) -> dict[str, str]:
    return dict(core_labels.run_labels(identifier=identifier, flow_name=flow_name, component=component))


def rbac_labels(component: str = "runner-rbac") -> dict[str, str]:
    """Labels for the per-namespace RBAC objects (shared by runs, so no flow/identifier)."""
    return {core_labels.MANAGED_BY_LABEL: "dok", core_labels.COMPONENT_LABEL: component}




def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def job_env(spec: JobSpec) -> list[dict[str, Any]]:
    """The job pod's environment, per DEVELOPERS.md "Job pod environment" (plus secret refs)."""
    env: list[dict[str, Any]] = [
        {"name": "DOK_IDENTIFIER", "value": spec.identifier},
        {"name": "DOK_FLOW_NAME", "value": spec.flow_name},
        {"name": "DOK_IMAGE", "value": spec.image},
        {"name": "DOK_MIN_WORKERS", "value": str(spec.min_workers)},
        {"name": "DOK_MAX_WORKERS", "value": str(spec.max_workers)},
        {"name": "DOK_PARAMETERS", "value": json.dumps(dict(spec.parameters), sort_keys=True)},
        {"name": "DOK_WORKER_START_TIMEOUT", "value": _num(spec.worker_start_timeout)},
        {"name": "DOK_WORKER_RESOURCES", "value": json.dumps(dict(spec.worker_resources or {}), sort_keys=True)},
        {"name": "DOK_IMAGE_PULL_POLICY", "value": spec.image_pull_policy},
        {"name": "DOK_SECRET_ENV",
         "value": json.dumps({k: v.to_dict() for k, v in sorted(spec.secret_env.items())}, sort_keys=True)},
        _field_env("DOK_NAMESPACE", "metadata.namespace"),
        _field_env("DOK_POD_NAME", "metadata.name"),
        _field_env("DOK_POD_UID", "metadata.uid"),
        _field_env("DOK_POD_IP", "status.podIP"),
    ]
    if spec.image_pull_secrets:
        env.append({"name": "DOK_IMAGE_PULL_SECRETS", "value": json.dumps(list(spec.image_pull_secrets))})
    for name, ref in sorted(spec.secret_env.items()):
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}})
    return env


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def job_manifest(spec: JobSpec) -> dict[str, Any]:
    """The batch/v1 Job for one run."""
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
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.job_name, "namespace": spec.namespace, "labels": dict(labels),
                     "annotations": {PARAMETERS_ANNOTATION: json.dumps(dict(spec.parameters), sort_keys=True)}},
        "spec": job_spec,
    }


def service_account_manifest(namespace: str, name: str = RUNNER_NAME) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": rbac_labels()}}


def role_manifest(namespace: str, name: str = RUNNER_NAME) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace, "labels": rbac_labels()},
            "rules": [dict(r, apiGroups=list(r["apiGroups"]), resources=list(r["resources"]),
                           verbs=list(r["verbs"])) for r in RUNNER_RULES]}


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
