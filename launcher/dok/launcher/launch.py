"""`execute(env, …) -> RunHandle`: launch one run of a built environment's flow as a Kubernetes Job.

Called by `DaskOnKubernetesEnvironment.execute()` and by `dok run`. It makes sure the namespace is set
up (runner RBAC; see `prepare.py`), builds the Job manifest from the environment plus the keyword
arguments (explicit arguments win), creates it, and returns a handle; `handle.wait()` returns the flow's
State. Nothing here blocks on the run itself. When the cluster drops a requested ttlSecondsAfterFinished
(Kubernetes 1.20 without the TTLAfterFinished gate), the run proceeds with a `TTLIgnoredWarning`, also
kept in `handle.warnings` (the CLI prints it as one line). With `create_pull_secret=True` the run's own
image pull Secret is made first from the build's registry credentials (`pull_secret.py`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from dok.core.environment import is_template_path
from dok.core.labels import new_identifier
from dok.core.runspec import RunSpec

from . import pull_secret
from .exceptions import ConfigError, InfrastructureError, TTLIgnoredWarning, UsageError
from .handle import RunHandle
from .kube import Kube
from .manifests import (OPERATOR_GROUP, OPERATOR_RESOURCES, OPERATOR_VERSION, RUNNER_NAME, SecretRef, job_manifest,
                        job_name_of, validate_namespace)
from .prepare import check_service_account
from .prepare import setup as run_setup
from .results import check_pickup_allowed, pickup_timeout

if TYPE_CHECKING:
    from dok.core.environment import DaskOnKubernetesEnvironment

_SETTINGS = frozenset(f.name for f in dataclasses.fields(RunSpec))
# Set by execute() itself (its own keyword arguments), not through **settings.
_OWN = frozenset({"identifier", "namespace", "parameters", "flow_name"})


def _secret_ref_text(name: str, ref: object) -> str | tuple[str, str]:
    """execute(secret_env=...) values: 'SECRET:KEY', (SECRET, KEY), {"secret": s, "key": k} or a SecretRef;
    RunSpec checks them (as 'SECRET:KEY' or a pair)."""
    if isinstance(ref, SecretRef):
        return (ref.secret, ref.key)
    if isinstance(ref, Mapping):
        return (str(ref.get("secret") or ref.get("name")), str(ref.get("key")))
    if isinstance(ref, str) or (isinstance(ref, Sequence) and len(ref) == 2):
        return ref if isinstance(ref, str) else (str(ref[0]), str(ref[1]))
    raise UsageError(f"secret reference for {name!r} must be 'SECRET:KEY', got {ref!r}")


def flow_name_of(env: DaskOnKubernetesEnvironment, explicit: str | None = None) -> str:
    """The explicit name, else the environment's (set by `build`), else the image's repository name."""
    name = explicit or env.flow_name
    if name:
        return str(name)
    repo = (env.image or "").rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return repo or "flow"


def resolve_namespace(explicit: str | None, env: DaskOnKubernetesEnvironment | None, kube: Kube) -> str:
    """Where a run goes, resolved once when connecting: the argument (`-n`), else the environment's, else the
    kubeconfig context's namespace (what `dok status/list/cleanup` use too)."""
    namespace = explicit or (env.namespace if env is not None else None) or kube.default_namespace
    validate_namespace(namespace)
    return namespace


def read_template(path: Any, *, setting: str) -> str:
    """The text of a pod template file (`--worker-template FILE`, `worker_template="pod.yaml"`)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"{setting}: cannot read {str(path)!r}: {exc.strerror}",
                         hint="give the path of a YAML pod spec (or the spec itself)") from None


def run_spec_for(env: DaskOnKubernetesEnvironment, *, identifier: str, namespace: str,
                 parameters: Mapping[str, Any] | None = None, flow_name: str | None = None,
                 **settings: Any) -> RunSpec:
    """The RunSpec of a run of `env`: the environment's settings with `settings` (RunSpec fields; None =
    unset) on top. Validation is RunSpec's."""
    unknown = set(settings) - (_SETTINGS - _OWN)
    if unknown:
        raise UsageError(f"unknown execute() argument(s): {', '.join(sorted(unknown))}")
    image = settings.pop("image", None) or env.image
    if not image:
        raise ConfigError("the environment has no image yet",
                          hint="build it first: env = env.build(flow) (or `dok build`)")
    secret_env = {name: _secret_ref_text(name, ref) for name, ref in dict(settings.pop("secret_env", None) or {}).items()}
    for name in ("job_template", "worker_template"):
        value = settings.get(name) if settings.get(name) is not None else getattr(env, name, None)
        if is_template_path(value):
            settings[name] = read_template(value, setting=name)
    return env.run_spec(identifier=identifier, namespace=namespace, parameters=dict(parameters or {}),
                        flow_name=flow_name_of(env, flow_name), image=str(image), secret_env=secret_env, **settings)


def execute(env: DaskOnKubernetesEnvironment, *, parameters: Mapping[str, Any] | None = None,
            identifier: str | None = None, namespace: str | None = None, flow_name: str | None = None,
            kube: Kube | None = None, kubeconfig: str | None = None, setup: bool = True,
            check_permissions: bool = True, out: TextIO | None = None, pickup: bool = True,
            registry_credentials: pull_secret.RegistryCredentials | None = None, **settings: Any) -> RunHandle:
    """Create the run's Job and return its handle (`.identifier`, `.wait() -> State`, `.cancel()`,
    `.cleanup()`). `settings`: any `RunSpec` setting (min_workers, max_workers, worker_start_timeout,
    worker_resources, resources, active_deadline_seconds, ttl_seconds_after_failure, image_pull_secrets,
    service_account_name, node_selector, tolerations, secret_env, image_pull_policy, image, create_pull_secret,
    result_location, result_pickup_timeout, result_fetch, …). `registry_credentials`: for `create_pull_secret`
    (default: those the builder reads, see pull_secret). `pickup=False` (a detached run): the runner does not
    wait for the caller to fetch the results (`results.pickup_timeout`); with it and no result location, the
    caller's right to port-forward to the job pod is checked before the Job is created."""
    kube = kube or Kube.connect(kubeconfig=kubeconfig)
    ns = resolve_namespace(namespace, env, kube)
    ttl_requested = settings.get("ttl_seconds_after_failure") is not None  # not just the default
    spec = run_spec_for(env, identifier=identifier or new_identifier(), namespace=ns, parameters=parameters,
                        flow_name=flow_name, **settings)
    spec = spec.replace(result_pickup_timeout=pickup_timeout(result_location=spec.result_location, detach=not pickup,
                                                             requested=spec.result_pickup_timeout))
    if spec.result_pickup_timeout is not None and check_permissions:
        check_pickup_allowed(kube, ns)
    secret = None
    if spec.create_pull_secret:
        credentials = pull_secret.resolve_credentials(str(spec.image), given=registry_credentials)
        secret = pull_secret.pull_secret_manifest(spec, credentials)
        spec = pull_secret.with_pull_secret(spec)
        if check_permissions:
            pull_secret.check_rights(kube, ns)
    manifest = job_manifest(spec)  # before anything is created: a bad setting or template stops here
    service_account_warning = None
    check_backend(kube, spec.backend)
    if setup and spec.service_account_name == RUNNER_NAME:
        run_setup(env, namespace=ns, kube=kube, check_permissions=check_permissions, backend=spec.backend)
    elif spec.service_account_name != RUNNER_NAME and check_permissions:
        service_account_warning = check_service_account(kube, ns, spec.service_account_name,
                                                        backend=spec.backend)
    if secret is not None:
        pull_secret.create(kube, secret)
    try:
        created = kube.create(manifest)
    except BaseException:
        if secret is not None:
            pull_secret.discard(kube, secret)
        raise
    if secret is not None:
        pull_secret.adopt(kube, secret, created)
    handle = RunHandle(kube=kube, identifier=spec.identifier, namespace=ns, job_name=job_name_of(spec),
                       flow_name=spec.flow_name, out=out)
    if service_account_warning:
        handle.warnings.append(service_account_warning)
    handle.result_location = spec.result_location
    handle.pickup = spec.result_pickup_timeout is not None
    dropped = ttl_dropped(spec, created) if ttl_requested else None
    if dropped:
        handle.warnings.append(dropped)
        warnings.warn(dropped, TTLIgnoredWarning, stacklevel=2)
    return handle


OPERATOR_INSTALL = "tools/bazel run //tools:cluster -- operator install"


def check_backend(kube: Kube, backend: str) -> None:
    """Before anything is created: backend "operator" needs the dask-kubernetes operator's CRDs."""
    if backend != "operator":
        return
    missing = kube.missing_resources(OPERATOR_GROUP, OPERATOR_VERSION, list(OPERATOR_RESOURCES))
    if missing:
        crds = ", ".join(f"{plural}.{OPERATOR_GROUP}" for plural in missing)
        raise InfrastructureError(
            f"backend 'operator': the cluster has no dask-kubernetes operator (missing CRDs: {crds})",
            hint=f"install the operator (CRDs + controller): `{OPERATOR_INSTALL}` (or its helm chart), "
                 "or run with --backend pods")


def ttl_dropped(spec: RunSpec, created: Any) -> str | None:
    """The warning when ttlSecondsAfterFinished was requested but the created Job lacks it (Kubernetes 1.20
    without the TTLAfterFinished feature gate drops the field silently), else None."""
    if spec.ttl_seconds_after_failure is None or created is None:
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
    return (f"the cluster dropped ttlSecondsAfterFinished={spec.ttl_seconds_after_failure} from Job "
            f"{job_name_of(spec)} (TTLAfterFinished not enabled: Kubernetes < 1.21 without the feature gate), so it "
            f"will not be deleted automatically; remove it with `dok cleanup {spec.identifier} -n {spec.namespace}`")
