"""`execute(env, …) -> RunHandle`: launch one run of a built environment's flow as a Kubernetes Job.

Called by `DaskOnKubernetesEnvironment.execute()` and by `dok run`. It makes sure the namespace is set
up (runner RBAC; see `prepare.py`), builds the Job manifest from the environment plus the keyword
arguments (explicit arguments win), creates it, and returns a handle; `handle.wait()` returns the flow's
State. Nothing here blocks on the run itself. When the cluster drops a requested ttlSecondsAfterFinished
(Kubernetes 1.20 without the TTLAfterFinished gate), the run proceeds with a `TTLIgnoredWarning`, also
kept in `handle.warnings` (the CLI prints it as one line).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from .exceptions import ConfigError, TTLIgnoredWarning, UsageError
from .handle import RunHandle
from .kube import Kube
from .manifests import RUNNER_NAME, JobSpec, SecretRef, job_manifest
from .prepare import setup as run_setup

DEFAULT_WORKER_START_TIMEOUT = 120.0
# A finished Job (and its pod) is deleted this long after it ends, even when no `dok` is around to clean
# up (e.g. `dok run` was killed, or --detach): the TTL controller's job (Kubernetes >= 1.21, or the
# TTLAfterFinished feature gate).
DEFAULT_TTL_SECONDS_AFTER_FINISHED = 3600


def _secret_refs(value: Any) -> dict[str, SecretRef]:
    """Accept {"NAME": SecretRef | "secret:key" | {"secret": s, "key": k} | (s, k)}."""
    out: dict[str, SecretRef] = {}
    for name, ref in dict(value or {}).items():
        if isinstance(ref, SecretRef):
            out[name] = ref
        elif isinstance(ref, str):
            out[name] = SecretRef.parse(ref)
        elif isinstance(ref, Mapping):
            secret = ref.get("secret") or ref.get("name")
            out[name] = SecretRef(secret=str(secret), key=str(ref.get("key")))
        elif isinstance(ref, Sequence) and len(ref) == 2:
            out[name] = SecretRef(secret=str(ref[0]), key=str(ref[1]))
        else:
            secret, key = getattr(ref, "secret", None) or getattr(ref, "name", None), getattr(ref, "key", None)
            if not secret or not key:
                raise UsageError(f"secret reference for {name!r} must be 'SECRET:KEY', got {ref!r}")
            out[name] = SecretRef(secret=str(secret), key=str(key))
        out[name].validate()
    return out


def _pick(explicit: Any, env: Any, *names: str, default: Any = None) -> Any:
    if explicit is not None:
        return explicit
    for name in names:
        value = getattr(env, name, None)
        if value is not None:
            return value
    return default


def flow_name_of(env: Any, explicit: str | None = None) -> str:
    name = explicit or getattr(env, "flow_name", None)
    if name:
        return str(name)
    image = str(getattr(env, "image", "") or "")
    repo = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return repo or "flow"


def job_spec_for(env: Any, *, identifier: str, namespace: str, parameters: Mapping[str, Any] | None = None,
                 flow_name: str | None = None, **kw: Any) -> JobSpec:
    """The JobSpec for a run of `env` (explicit keyword arguments win over the environment's values)."""
    image = kw.pop("image", None) or getattr(env, "image", None)
    if not image:
        raise ConfigError("the environment has no image yet",
                          hint="build it first: env = env.build(flow) (or `dok build`)")
    return JobSpec(
        identifier=identifier,
        flow_name=flow_name_of(env, flow_name),
        namespace=namespace,
        image=str(image),
        min_workers=int(_pick(kw.pop("min_workers", None), env, "min_workers", default=0)),
        max_workers=int(_pick(kw.pop("max_workers", None), env, "max_workers", default=1)),
        parameters=dict(parameters or {}),
        worker_start_timeout=float(_pick(kw.pop("worker_start_timeout", None), env, "worker_start_timeout",
                                         default=DEFAULT_WORKER_START_TIMEOUT)),
        worker_resources=_pick(kw.pop("worker_resources", None), env, "worker_resources"),
        resources=_pick(kw.pop("resources", None), env, "resources", "job_resources"),
        active_deadline_seconds=_pick(kw.pop("active_deadline_seconds", None), env, "active_deadline_seconds"),
        ttl_seconds_after_finished=_pick(kw.pop("ttl_seconds_after_finished", None), env,
                                         "ttl_seconds_after_finished", default=DEFAULT_TTL_SECONDS_AFTER_FINISHED),
        image_pull_secrets=tuple(_pick(kw.pop("image_pull_secrets", None), env, "image_pull_secrets", default=())),
        service_account_name=_pick(kw.pop("service_account_name", None), env, "service_account_name",
                                   default=RUNNER_NAME),
        node_selector=_pick(kw.pop("node_selector", None), env, "node_selector"),
        tolerations=tuple(_pick(kw.pop("tolerations", None), env, "tolerations", default=())),
        # the environment's references, then execute()'s / --secret-env's (same name: the argument wins)
        secret_env=_secret_refs({**dict(getattr(env, "secret_env", None) or {}),
                                 **dict(kw.pop("secret_env", None) or {})}),
        image_pull_policy=_pick(kw.pop("image_pull_policy", None), env, "image_pull_policy",
                                default="IfNotPresent"),
        **_no_leftovers(kw),
    )


def _no_leftovers(kw: dict[str, Any]) -> dict[str, Any]:
    if kw:
        raise UsageError(f"unknown execute() argument(s): {', '.join(sorted(kw))}")
    return {}


def execute(env: Any, *, parameters: Mapping[str, Any] | None = None, identifier: str | None = None,
            namespace: str | None = None, flow_name: str | None = None, kube: Kube | None = None,
            kubeconfig: str | None = None, setup: bool = True, check_permissions: bool = True,
            out: TextIO | None = None, **options: Any) -> RunHandle:
    """Create the run's Job and return its handle (`.identifier`, `.wait() -> State`, `.cancel()`,
    `.cleanup()`). `options`: min_workers, max_workers, worker_start_timeout, worker_resources,
    resources, active_deadline_seconds, ttl_seconds_after_finished, image_pull_secrets,
    service_account_name, node_selector, tolerations, secret_env, image_pull_policy, image."""
    kube = kube or Kube.connect(kubeconfig=kubeconfig)
    ns = namespace or getattr(env, "namespace", None) or kube.default_namespace
    identifier = identifier or str(uuid.uuid4())
    ttl_requested = (options.get("ttl_seconds_after_finished") is not None
                     or getattr(env, "ttl_seconds_after_finished", None) is not None)  # not just the default
    spec = job_spec_for(env, identifier=identifier, namespace=ns, parameters=parameters, flow_name=flow_name,
                        **options)
    if setup and spec.service_account_name == RUNNER_NAME:
        run_setup(env, namespace=ns, kube=kube, check_permissions=check_permissions)
    manifest = job_manifest(spec)
    created = kube.create(manifest)
    handle = RunHandle(kube=kube, identifier=identifier, namespace=ns, job_name=spec.job_name,
                       flow_name=spec.flow_name, out=out)
    dropped = ttl_dropped(spec, created) if ttl_requested else None
    if dropped:
        handle.warnings.append(dropped)
        warnings.warn(dropped, TTLIgnoredWarning, stacklevel=2)
    return handle


def ttl_dropped(spec: JobSpec, created: Any) -> str | None:
    """The warning when ttlSecondsAfterFinished was requested but the created Job lacks it (Kubernetes 1.20
    without the TTLAfterFinished feature gate drops the field silently), else None."""
    if spec.ttl_seconds_after_finished is None or created is None:
        return None
    job_spec = getattr(created, "spec", None)
    if isinstance(created, Mapping):
        job_spec = created.get("spec")
    if job_spec is None:
        return None  # nothing to compare with
    if isinstance(job_spec, Mapping):
        kept = job_spec.get("ttlSecondsAfterFinished", job_spec.get("ttl_seconds_after_finished"))
    else:
        kept = getattr(job_spec, "ttl_seconds_after_finished", None)
    if kept is not None:
        return None
    return (f"the cluster dropped ttlSecondsAfterFinished={spec.ttl_seconds_after_finished} from Job "
            f"{spec.job_name} (TTLAfterFinished not enabled: Kubernetes < 1.21 without the feature gate), so it "
            f"will not be deleted automatically; remove it with `dok cleanup {spec.identifier} -n {spec.namespace}`")
