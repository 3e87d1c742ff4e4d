"""`RunSpec`: every setting of one run, in one frozen value, validated once.

    spec = RunSpec(identifier=new_identifier(), flow_name="fanout", image="localhost:5000/fanout:abc",
                   min_workers=0, max_workers=4, parameters={"n": 10})
    spec.to_env()                   # {"DOK_IDENTIFIER": ..., "DOK_MAX_WORKERS": "4", ...}: the job pod's env
    RunSpec.from_env(os.environ)    # the same RunSpec again, inside the job pod
    RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))   # JSON round trip

The launcher builds the Job manifest from it, the runner (inside the job pod) its configuration and local
mode (`dok run --local`) its local cluster; nobody else validates a run setting. The environment
(`DaskOnKubernetesEnvironment`) checks the run settings it carries with the same rules (`check_setting`).

Each setting is a dataclass field declared with `setting(...)`: its default, its kind (how it is written to
and read from the job pod environment: `str`, `int`, `float` seconds, `json`), whether it travels in the job
pod environment (`env=True`, as `DOK_<NAME>`) or only in the Job manifest the launcher writes (`env=False`:
deadlines, TTL, Secret references, pull secrets, …), and the simple rule it obeys (a minimum, a set of
choices). Adding a run setting = one `setting(...)` line here, the code that uses it, and its tests: the pod
environment, the JSON round trip, validation and DEVELOPERS.md's variable list follow from the declaration.

A bad value raises `RunSettingError` (an `EnvironmentConfigError`, exit code 2) naming the setting, the
value and what is allowed; `from_env` names the environment variable instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .exceptions import EnvironmentConfigError
from .labels import new_identifier
from .names import (IMAGE_REFERENCE_HINT, RESERVED_ENV_PREFIX, SCHEDULER_PORT,
                    InvalidName, is_dns_label, is_dns_subdomain, is_env_name, is_image_reference, is_label_value,
                    split_secret_ref)
from .results import ResultLocationError, check_result_location
from .resources import DEFAULT_JOB_RESOURCES, DEFAULT_WORKER_RESOURCES, is_quantity, requests_above_limits

__all__ = [
    "DEFAULT_JOB_RESOURCES",
    "DEFAULT_TTL_SECONDS_AFTER_FAILURE",
    "DEFAULT_TTL_SECONDS_AFTER_FINISHED",
    "DEFAULT_TTL_SECONDS_AFTER_SUCCESS",
    "DEFAULT_WORKER_RESOURCES",
    "DEFAULT_WORKER_START_TIMEOUT",
    "ENV_PREFIX",
    "POD_FIELD_ENV",
    "RunSettingError",
    "RunSpec",
    "RUNNER_SERVICE_ACCOUNT",
    "check_setting",
    "env_var",
    "normalize_secret_env",
]

ENV_PREFIX = RESERVED_ENV_PREFIX
DEFAULT_WORKER_START_TIMEOUT = 120.0
DEFAULT_WORKER_DEATH_TIMEOUT = 60.0
# A finished Job and its job pod (the job log with the copied worker logs, the final State) stay for `dok logs`,
# `dok status` after the run, then the TTL controller deletes them (Kubernetes >= 1.21, or the gate), even when
# no `dok` is around. The Job is created with the failure TTL (also what a killed runner leaves); the runner
# shortens it to the success TTL when the flow succeeds. Worker pods are deleted as soon as the flow ends.
DEFAULT_TTL_SECONDS_AFTER_SUCCESS = 600        # 10 min: enough to read the logs and the State
DEFAULT_TTL_SECONDS_AFTER_FAILURE = 24 * 3600  # 24 h: time to investigate
DEFAULT_TTL_SECONDS_AFTER_FINISHED = DEFAULT_TTL_SECONDS_AFTER_FAILURE  # the TTL the Job is created with
RUNNER_SERVICE_ACCOUNT = "dok-runner"  # the job pod's ServiceAccount (and its Role and RoleBinding)
PULL_POLICIES = ("Always", "IfNotPresent", "Never")

# Facts about the job pod itself, set by the launcher from the downward API (not settings of the run).
POD_FIELD_ENV: dict[str, str] = {
    "DOK_POD_NAME": "metadata.name",
    "DOK_POD_UID": "metadata.uid",
    "DOK_POD_IP": "status.podIP",
}

Kind = Literal["str", "int", "float", "json"]
_SECRET_ENV_RULE = ("each value must be 'SECRET:KEY': a Kubernetes Secret name (lowercase letters, digits, "
                    "'-', '.') and one of its keys (letters, digits, '-', '_', '.'), e.g. 'db-creds:password'")


class RunSettingError(EnvironmentConfigError):
    """A run setting has a value that is not allowed: `setting`, `value` and `problem` (what is allowed)."""

    def __init__(self, setting: str, value: Any, problem: str, *, hint: str | None = None,
                 label: str | None = None) -> None:
        super().__init__(f"{label or setting}={value!r}: {problem}", hint=hint)
        self.setting = setting
        self.value = value
        self.problem = problem


@dataclass(frozen=True)
class _Rule:
    kind: Kind
    env: bool
    minimum: float | None = None      # ints: the smallest allowed value; floats: must be > 0 when set
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False            # None allowed


BACKENDS = ("pods", "operator")  # how workers are obtained (docs/operator.md)


def setting(default: Any = dataclasses.MISSING, *, kind: Kind, env: bool = True, minimum: float | None = None,
            maximum: float | None = None, choices: tuple[str, ...] = (), optional: bool = False,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """Declare a RunSpec field (see the module docstring)."""
    rule = _Rule(kind=kind, env=env, minimum=minimum, maximum=maximum, choices=choices, optional=optional)
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata={"dok": rule})
    return field(default=default, metadata={"dok": rule})


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Every setting of one run (see the module docstring). `namespace=None`: the kubeconfig context's."""

    # -- what runs, where (job pod environment) ----------------------------------------------------------
    identifier: str = setting(kind="str", default_factory=new_identifier)
    flow_name: str = setting("flow", kind="str")
    image: str | None = setting(None, kind="str", optional=True)  # the job and worker image
    namespace: str | None = setting(None, kind="str", optional=True)
    parameters: Mapping[str, Any] = setting(kind="json", default_factory=dict)
    # -- workers (job pod environment: the runner's cluster) -----------------------------------------------
    min_workers: int = setting(0, kind="int", minimum=0)
    max_workers: int = setting(1, kind="int", minimum=1)
    worker_start_timeout: float = setting(DEFAULT_WORKER_START_TIMEOUT, kind="float", minimum=0)
    worker_death_timeout: float = setting(DEFAULT_WORKER_DEATH_TIMEOUT, kind="float", minimum=0)
    # the worker container's requests/limits ({} = none); its CPU sets --nthreads, its memory limit --memory-limit
    worker_resources: Mapping[str, Mapping[str, str]] = setting(kind="json",
                                                                default_factory=lambda: _copy(DEFAULT_WORKER_RESOURCES))
    worker_nthreads: int | None = setting(None, kind="int", minimum=1, optional=True)
    # Dask workers (processes) per worker pod; min/max_workers count workers, pods hold this many each (a pod
    # starts once for all of them; each gets its share of the pod's CPU threads, memory limit and GPUs)
    worker_processes: int = setting(1, kind="int", minimum=1, maximum=64)
    max_worker_failures: int | None = setting(None, kind="int", minimum=0, optional=True)
    # threads of a Dask worker inside the job pod, next to the scheduler: it runs tasks at once, until worker
    # pods join (then it hands its results over and stops); 0 = every task runs on worker pods
    job_worker_threads: int = setting(0, kind="int", minimum=0, maximum=64)
    image_pull_policy: str = setting("IfNotPresent", kind="str", choices=PULL_POLICIES)
    scheduler_port: int = setting(SCHEDULER_PORT, kind="int", minimum=1, maximum=65535)
    adapt_interval: float = setting(0.5, kind="float", minimum=0)   # Adaptive's period (s)
    adapt_wait_count: int = setting(4, kind="int", minimum=1)       # idle checks before a worker is retired
    adapt_target_duration: float = setting(1.0, kind="float", minimum=0)  # how long pending work should take
    watch_interval: float = setting(1.0, kind="float", minimum=0)   # worker pod poll period (s)
    # scaling policy (dok.core.scaling): idle seconds before a worker retires (None: adapt_wait_count x
    # adapt_interval), and the DAG lookahead (keep workers through short gaps, start pods ahead of fan-outs)
    scale_idle_wait: float | None = setting(None, kind="float", minimum=0, optional=True)
    scale_lookahead: str = setting("on", kind="str", choices=("on", "off"))
    dashboard: str = setting("on", kind="str", choices=("on", "off"))  # the scheduler's Dask dashboard (DASHBOARD_PORT)
    # -- results (dok.core.results): an fsspec URL the runner writes <identifier>/result.pkl + state.json to;
    # without one, how long the finished runner waits for an attached client to pick the results up (s; unset:
    # no pick-up, the launcher sets it for attached runs: dok.launcher.results.pickup_timeout)
    result_location: str | None = setting(None, kind="str", optional=True)
    result_pickup_timeout: float | None = setting(None, kind="float", minimum=0, optional=True)
    # which results the flow's State carries: the reference (terminal) tasks' ("reference"), or every task's ("all")
    result_fetch: str = setting("reference", kind="str", choices=("reference", "all"))
    # the finished Job's TTL after a success: the runner patches its Job to it (dok.runner.teardown)
    ttl_seconds_after_success: int | None = setting(DEFAULT_TTL_SECONDS_AFTER_SUCCESS, kind="int", minimum=0,
                                                    optional=True)
    backend: str = setting("pods", kind="str", choices=BACKENDS)  # workers: dok's own pods / the dask operator
    # -- the Job manifest only (the launcher writes them into the Job; workers inherit from the job pod) ------
    # the job container's requests/limits ({} = none); defaults and their reasons: dok.core.resources
    resources: Mapping[str, Mapping[str, str]] = setting(kind="json", env=False,
                                                         default_factory=lambda: _copy(DEFAULT_JOB_RESOURCES))
    secret_env: Mapping[str, str] = setting(kind="json", env=False, default_factory=dict)
    image_pull_secrets: tuple[str, ...] = setting((), kind="json", env=False)
    # the launcher makes a pull Secret from the registry credentials the build used (dok.launcher.pull_secret)
    create_pull_secret: bool = setting(False, kind="json", env=False)
    active_deadline_seconds: int | None = setting(None, kind="int", env=False, minimum=1, optional=True)
    # the Job's ttlSecondsAfterFinished: created with the failure TTL, shortened by the runner on success (None: kept)
    ttl_seconds_after_failure: int | None = setting(DEFAULT_TTL_SECONDS_AFTER_FAILURE, kind="int", env=False,
                                                    minimum=0, optional=True)
    service_account_name: str = setting(RUNNER_SERVICE_ACCOUNT, kind="str", env=False)
    node_selector: Mapping[str, str] | None = setting(None, kind="json", env=False, optional=True)
    tolerations: tuple[Mapping[str, Any], ...] = setting((), kind="json", env=False)
    termination_grace_period_seconds: int = setting(30, kind="int", env=False, minimum=0)
    # -- pod customisation (README "Running on a real cluster"); worker_* None = as the job pod ---------------
    worker_node_selector: Mapping[str, str] | None = setting(None, kind="json", optional=True)
    worker_tolerations: tuple[Mapping[str, Any], ...] | None = setting(None, kind="json", optional=True)
    affinity: Mapping[str, Any] | None = setting(None, kind="json", env=False, optional=True)  # the job pod's
    worker_affinity: Mapping[str, Any] | None = setting(None, kind="json", optional=True)
    labels: Mapping[str, str] = setting(kind="json", default_factory=dict)       # job and worker pods
    annotations: Mapping[str, str] = setting(kind="json", default_factory=dict)  # job and worker pods
    priority_class: str | None = setting(None, kind="str", optional=True)       # job and worker pods
    job_template: Mapping[str, Any] | None = setting(None, kind="json", env=False, optional=True)  # podtemplate
    worker_template: Mapping[str, Any] | None = setting(None, kind="json", optional=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _check(f.name, f.metadata["dok"], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        check_worker_range(self.min_workers, self.max_workers)
        check_worker_processes(self.worker_processes, max_workers=self.max_workers, backend=self.backend)

    # -- derived -----------------------------------------------------------------------------------------
    @property
    def secret_refs(self) -> dict[str, tuple[str, str]]:
        """NAME -> (Secret name, key), sorted by NAME."""
        return {name: split_secret_ref(ref) for name, ref in sorted(self.secret_env.items())}

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)

    # -- the job pod environment ---------------------------------------------------------------------------
    def to_env(self) -> dict[str, str]:
        """The DOK_* variables of the job pod (settings with `env=True`; unset optional ones are left out)."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            rule: _Rule = f.metadata["dok"]
            value = getattr(self, f.name)
            if rule.env and value is not None:
                out[env_var(f.name)] = _format(rule.kind, value)
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, defaults: Mapping[str, Any] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> RunSpec:
        """The RunSpec the job pod environment describes: `overrides` > `environ` (DOK_*) > `defaults` > the
        declared defaults (None values in `overrides`/`defaults` count as unset). Errors name the variable."""
        values = {k: v for k, v in (defaults or {}).items() if v is not None}
        from_environ: dict[str, str] = {}
        for name, rule in _rules(cls).items():
            raw = environ.get(env_var(name))
            if rule.env and raw is not None and raw.strip() != "":
                from_environ[name] = raw
                values[name] = _parse(name, rule.kind, raw.strip())
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        values.update(given)
        unknown = sorted(set(values) - set(_rules(cls)))
        if unknown:
            raise EnvironmentConfigError(f"unknown run setting(s): {', '.join(unknown)}")
        try:
            return cls(**values)
        except RunSettingError as exc:
            if exc.setting in from_environ and exc.setting not in given:
                raise RunSettingError(exc.setting, exc.value, exc.problem, hint=exc.hint,
                                      label=env_var(exc.setting)) from None
            raise

    # -- JSON ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every setting (`from_dict` inverts it)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _jsonable(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        if not isinstance(data, Mapping):
            raise EnvironmentConfigError(f"run settings must be a dict, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_rules(cls)))
        if unknown:
            raise EnvironmentConfigError(f"unknown run setting(s): {', '.join(unknown)}")
        return cls(**dict(data))


# -- the rules ---------------------------------------------------------------------------------------------------
def _rules(cls: type[RunSpec] | None = None) -> dict[str, _Rule]:
    return {f.name: f.metadata["dok"] for f in dataclasses.fields(cls or RunSpec)}


def env_var(name: str) -> str:
    """The job pod variable of a setting: DOK_<NAME>."""
    return ENV_PREFIX + name.upper()


def check_worker_range(min_workers: int, max_workers: int) -> None:
    if min_workers > max_workers:
        raise RunSettingError("min_workers", min_workers, f"must be <= max_workers ({max_workers})")


def check_worker_processes(processes: int, *, max_workers: int, backend: str) -> None:
    """Pods are whole: max_workers must fill them, and only dok's own worker pods run several workers."""
    if processes <= 1:
        return
    if backend != "pods":
        raise RunSettingError("worker_processes", processes, f"must be 1 with backend {backend!r} (several workers "
                                                             "per pod need backend 'pods')")
    if max_workers % processes:
        below, above = max_workers // processes * processes, -(-max_workers // processes) * processes
        choices = " or ".join(str(n) for n in (below, above) if n > 0)
        raise RunSettingError("max_workers", max_workers, f"must be a multiple of worker_processes ({processes}): "
                                                          f"each worker pod runs {processes} workers; use {choices}")


def check_setting(name: str, value: Any) -> Any:
    """Check one run setting; returns it normalized (tuples for sequences, 'SECRET:KEY' references).
    Raises RunSettingError. The environment checks the run settings it carries with this too."""
    return _check(name, _rules()[name], value)


def _check(name: str, rule: _Rule, value: Any) -> Any:
    if value is None:
        if rule.optional:
            return None
        raise RunSettingError(name, value, "must be set")
    special = _SPECIAL.get(name)
    if rule.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise RunSettingError(name, value, _int_rule(rule))
        if (rule.minimum is not None and value < rule.minimum) or (rule.maximum is not None and value > rule.maximum):
            raise RunSettingError(name, value, _int_rule(rule))
    elif rule.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
            raise RunSettingError(name, value, "must be a positive number of seconds")
        value = float(value)
    elif rule.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise RunSettingError(name, value, "must be a non-empty string")
        if rule.choices and value not in rule.choices:
            what = "is not a pull policy: " if name == "image_pull_policy" else ""
            raise RunSettingError(name, value, f"{what}must be one of {', '.join(rule.choices)}")
    return special(name, value) if special else value


def _int_rule(rule: _Rule) -> str:
    if rule.maximum is not None:
        return f"must be an integer from {rule.minimum:g} to {rule.maximum:g}"
    return f"must be an integer >= {rule.minimum:g}"


def _identifier(name: str, value: str) -> str:
    if not is_label_value(value):
        raise RunSettingError(name, value, "is not a valid label value (a run identifier): at most 63 letters, "
                              "digits, '-', '_' or '.', starting and ending with a letter or digit",
                              hint="a run identifier is the UUID `dok run` printed, e.g. "
                                   "0f8fad5b-d9cb-469f-a165-70867728950e")
    return value


def _image(name: str, value: str) -> str:
    if not is_image_reference(value):
        raise RunSettingError(name, value, "is not an image reference", hint=IMAGE_REFERENCE_HINT)
    return value


def _namespace(name: str, value: str) -> str:
    if not is_dns_label(value):
        raise RunSettingError(name, value, "must be a Kubernetes namespace name (DNS-1123 label): lowercase "
                              "letters, digits and '-', starting and ending with a letter or digit, at most 63 "
                              "characters")
    return value


def _json_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RunSettingError(name, value, "must be a JSON object (a dict)")
    try:
        json.dumps(dict(value))
    except (TypeError, ValueError) as exc:
        raise RunSettingError(name, dict(value), f"is not JSON-serialisable ({exc}): pass numbers, strings, lists "
                              "and dicts") from None
    return dict(value)


def _resources(name: str, value: Any) -> dict[str, dict[str, str]]:
    shape = '{"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}'
    if not isinstance(value, Mapping) or set(value) - {"requests", "limits"}:
        raise RunSettingError(name, value, f"must look like {shape}")
    out: dict[str, dict[str, str]] = {}
    for kind, quantities in value.items():
        if not isinstance(quantities, Mapping):
            raise RunSettingError(name, value, f"[{kind!r}] must be an object, got {quantities!r}")
        for resource, quantity in quantities.items():
            if not isinstance(quantity, (str, int, float)) or not is_quantity(quantity):
                raise RunSettingError(name, value, f"[{kind!r}][{resource!r}]={quantity!r} is not a Kubernetes "
                                      "quantity", hint='e.g. "500m", "2", "1Gi"')
        out[kind] = dict(quantities)
    too_big = requests_above_limits(out)
    if too_big:
        raise RunSettingError(name, value, f"requests must not exceed limits ({'; '.join(too_big)})",
                              hint="Kubernetes refuses such a container; raise the limit or lower the request")
    return out


def _result_location(name: str, value: str) -> str:
    try:
        return check_result_location(value)
    except ResultLocationError as exc:
        raise RunSettingError(name, value, f"is not a usable result location ({exc.message})", hint=exc.hint) from None


def _copy(resources: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {kind: dict(quantities) for kind, quantities in resources.items()}


def normalize_secret_env(value: Any, *, name: str = "secret_env") -> dict[str, str]:
    """NAME -> 'SECRET:KEY' (also accepted: 'SECRET/KEY' or a (SECRET, KEY) pair), normalized to 'SECRET:KEY'."""
    if not isinstance(value, Mapping):
        raise RunSettingError(name, value, "must be a dict of NAME -> 'SECRET:KEY' (a Kubernetes Secret and its key)")
    out: dict[str, str] = {}
    for var, ref in value.items():
        if not is_env_name(var):
            raise RunSettingError(name, var, "names must match [A-Za-z_][A-Za-z0-9_]*")
        if var.startswith(ENV_PREFIX):
            raise RunSettingError(name, var, f"names starting with {ENV_PREFIX} are reserved for dok")
        try:
            secret, key = split_secret_ref(ref)
        except InvalidName as exc:
            raise RunSettingError(name, {var: ref}, _SECRET_ENV_RULE, hint=exc.hint) from None
        out[var] = f"{secret}:{key}"
    return out


def _secret_env(name: str, value: Any) -> dict[str, str]:
    return normalize_secret_env(value, name=name)


def _names(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(is_dns_subdomain(v) for v in value):
        raise RunSettingError(name, value, "must be a list of Secret names (lowercase letters, digits, '-', '.')")
    return tuple(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RunSettingError(name, value, "must be true or false")
    return value


def _service_account(name: str, value: str) -> str:
    if not is_dns_subdomain(value):
        raise RunSettingError(name, value, "is not a ServiceAccount name (lowercase letters, digits, '-', '.')")
    return value


def _string_map(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise RunSettingError(name, value, "must be a dict of string -> string")
    return dict(value)


def _tolerations(name: str, value: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(value, (str, Mapping)) or not isinstance(value, (list, tuple)) \
            or not all(isinstance(t, Mapping) for t in value):
        raise RunSettingError(name, value, "must be a list of Kubernetes toleration dicts")
    return tuple(dict(t) for t in value)


def _affinity(name: str, value: Any) -> dict[str, Any]:
    allowed = {"nodeAffinity", "podAffinity", "podAntiAffinity"}
    if not isinstance(value, Mapping) or not value or set(value) - allowed:
        raise RunSettingError(name, value, "must be a Kubernetes affinity: an object with nodeAffinity, "
                              "podAffinity and/or podAntiAffinity")
    return _json_object(name, value)


def _labels(name: str, value: Any) -> dict[str, str]:
    out = _string_map(name, value)
    for key, text in out.items():
        prefix, _, short = key.rpartition("/")
        if (prefix and not is_dns_subdomain(prefix)) or not short or not is_label_value(short):
            raise RunSettingError(name, {key: text}, f"{key!r} is not a label key ([prefix/]name, name at most 63 "
                                  "letters, digits, '-', '_' or '.')")
        if name == "labels" and text and not is_label_value(text):
            raise RunSettingError(name, {key: text}, f"{text!r} is not a label value (at most 63 letters, digits, "
                                  "'-', '_' or '.', starting and ending with a letter or digit)")
    return out


def _priority_class(name: str, value: str) -> str:
    if not is_dns_subdomain(value):
        raise RunSettingError(name, value, "is not a PriorityClass name (lowercase letters, digits, '-', '.')")
    return value


def _template(name: str, value: Any) -> dict[str, Any]:
    from .podtemplate import PodTemplateError, pod_template

    try:
        return pod_template(value, setting=name)
    except PodTemplateError as exc:
        raise RunSettingError(name, "…", exc.message.removeprefix(f"{name}: "), hint=exc.hint) from None


_SPECIAL: dict[str, Any] = {
    "identifier": _identifier,
    "image": _image,
    "namespace": _namespace,
    "parameters": _json_object,
    "worker_resources": _resources,
    "resources": _resources,
    "secret_env": _secret_env,
    "image_pull_secrets": _names,
    "create_pull_secret": _flag,
    "service_account_name": _service_account,
    "node_selector": _string_map,
    "tolerations": _tolerations,
    "worker_node_selector": _string_map,
    "worker_tolerations": _tolerations,
    "affinity": _affinity,
    "worker_affinity": _affinity,
    "labels": _labels,
    "annotations": _labels,
    "priority_class": _priority_class,
    "job_template": _template,
    "worker_template": _template,
    "result_location": _result_location,
}


# -- conversions ---------------------------------------------------------------------------------------------
def _format(kind: Kind, value: Any) -> str:
    if kind == "json":
        return json.dumps(_jsonable(value), sort_keys=True)
    if kind == "float":
        return str(int(value)) if float(value).is_integer() else str(value)
    return str(value)


def _seconds(raw: str) -> float:
    return float(raw.removesuffix("s"))


_PARSERS: dict[Kind, tuple[Callable[[str], Any], str]] = {
    "int": (int, "is not an integer"),
    "float": (_seconds, "is not a number of seconds"),
    "json": (json.loads, "is not valid JSON"),
}


def _parse(name: str, kind: Kind, raw: str) -> Any:
    if kind == "str":
        return raw
    parse, problem = _PARSERS[kind]
    try:
        return parse(raw)
    except ValueError as exc:  # json.JSONDecodeError is one
        where = f" ({exc.msg} at position {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise RunSettingError(name, raw[:80], problem + where, label=env_var(name)) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

