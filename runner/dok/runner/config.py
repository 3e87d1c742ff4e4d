"""The runner's settings, resolved once: explicit arguments > the job pod environment (DOK_*) > defaults.

The launcher sets the job pod environment (see DEVELOPERS.md, "Job pod environment"); `RunnerConfig.resolve`
reads it into one frozen, validated object so the rest of the runner never touches `os.environ`. Every
missing or malformed value raises `ConfigError` naming the variable, the bad value and what is expected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from dok.runner.exceptions import ConfigError

DEFAULT_SCHEDULER_PORT = 8786
DEFAULT_WORKER_START_TIMEOUT = 120.0
DEFAULT_WORKER_DEATH_TIMEOUT = 60.0
DEFAULT_TERMINATION_LOG = "/dev/termination-log"

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$")


@dataclass(frozen=True, kw_only=True)
class RunnerConfig:
    """Everything the runner needs; `resolve()` builds it, `__post_init__` validates it."""

    identifier: str                      # DOK_IDENTIFIER: this run's UUID (label value)
    flow_name: str                       # DOK_FLOW_NAME
    image: str                           # DOK_IMAGE: the worker image (the job pod's own image)
    namespace: str                       # DOK_NAMESPACE
    pod_name: str                        # DOK_POD_NAME: the job pod (owner of the worker pods)
    pod_uid: str                         # DOK_POD_UID
    pod_ip: str                          # DOK_POD_IP: workers connect to tcp://<pod_ip>:<port>
    min_workers: int = 0                 # DOK_MIN_WORKERS
    max_workers: int = 1                 # DOK_MAX_WORKERS
    parameters: dict[str, Any] = field(default_factory=dict)  # DOK_PARAMETERS (JSON object)
    worker_start_timeout: float = DEFAULT_WORKER_START_TIMEOUT  # DOK_WORKER_START_TIMEOUT (s)
    worker_death_timeout: float = DEFAULT_WORKER_DEATH_TIMEOUT  # DOK_WORKER_DEATH_TIMEOUT (s)
    worker_resources: dict[str, dict[str, str]] | None = None  # DOK_WORKER_RESOURCES (JSON)
    worker_nthreads: int | None = None   # DOK_WORKER_NTHREADS; default: from the CPU limit/request, else 1
    image_pull_policy: str = "IfNotPresent"  # DOK_IMAGE_PULL_POLICY (the cluster shares the build's dockerd)
    bundle_sha256: str | None = None     # DOK_BUNDLE_SHA256 (set in the image by the builder)
    termination_log: str = DEFAULT_TERMINATION_LOG  # DOK_TERMINATION_LOG
    scheduler_host: str = "0.0.0.0"      # DOK_SCHEDULER_HOST
    scheduler_port: int = DEFAULT_SCHEDULER_PORT  # DOK_SCHEDULER_PORT
    adapt_interval: float = 0.5          # DOK_ADAPT_INTERVAL (s): Adaptive's period
    adapt_wait_count: int = 4            # DOK_ADAPT_WAIT_COUNT: idle checks before a worker is retired
    adapt_target_duration: float = 1.0   # DOK_ADAPT_TARGET_DURATION (s): how long the pending work should take;
    #                                      lower asks for more workers sooner (distributed's default is 5 s)
    watch_interval: float = 1.0          # DOK_WATCH_INTERVAL (s): worker pod poll period
    max_worker_failures: int | None = None  # DOK_MAX_WORKER_FAILURES; default 2 * max_workers + 1

    def __post_init__(self) -> None:
        for name in ("identifier", "flow_name", "image", "namespace", "pod_name", "pod_uid", "pod_ip"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{_var(name)} is missing or empty",
                                  hint="the launcher sets it in the job pod; run the runner through `dok run`")
        if not _LABEL_VALUE.match(self.identifier):
            raise ConfigError(f"{_var('identifier')}={self.identifier!r} is not a valid label value",
                              hint="use ≤ 63 characters [A-Za-z0-9_.-], e.g. a UUID")
        if not _DNS_LABEL.match(self.namespace):
            raise ConfigError(f"{_var('namespace')}={self.namespace!r} is not a valid namespace name",
                              hint="lowercase letters, digits and '-', at most 63 characters")
        if not _IPV4.match(self.pod_ip) and ":" not in self.pod_ip:
            raise ConfigError(f"{_var('pod_ip')}={self.pod_ip!r} is not an IP address",
                              hint="set it from the downward API: fieldRef status.podIP")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ConfigError(f"{_var('image_pull_policy')}={self.image_pull_policy!r} is not a pull policy",
                              hint="use Always, IfNotPresent or Never")
        if self.min_workers < 0:
            raise ConfigError(f"{_var('min_workers')}={self.min_workers} is negative", hint="use 0 or more")
        if self.max_workers < 1:
            raise ConfigError(f"{_var('max_workers')}={self.max_workers} must be at least 1",
                              hint="ask for 1 or more workers")
        if self.max_workers < self.min_workers:
            raise ConfigError(f"{_var('max_workers')}={self.max_workers} is less than "
                              f"{_var('min_workers')}={self.min_workers}", hint="make max_workers >= min_workers")
        if not isinstance(self.parameters, dict):
            raise ConfigError(f"{_var('parameters')} must be a JSON object, got {type(self.parameters).__name__}",
                              hint='e.g. DOK_PARAMETERS=\'{"n": 3}\'')
        for name in ("worker_start_timeout", "worker_death_timeout", "adapt_interval", "watch_interval",
                     "adapt_target_duration"):
            value = getattr(self, name)
            if not (value > 0) or math.isinf(value):
                raise ConfigError(f"{_var(name)}={value!r} must be a positive number of seconds")
        if not 1 <= self.scheduler_port <= 65535:
            raise ConfigError(f"{_var('scheduler_port')}={self.scheduler_port} is not a TCP port")
        if self.worker_nthreads is not None and self.worker_nthreads < 1:
            raise ConfigError(f"{_var('worker_nthreads')}={self.worker_nthreads} must be at least 1")
        if self.adapt_wait_count < 1:
            raise ConfigError(f"{_var('adapt_wait_count')}={self.adapt_wait_count} must be at least 1")
        if self.max_worker_failures is not None and self.max_worker_failures < 0:
            raise ConfigError(f"{_var('max_worker_failures')}={self.max_worker_failures} is negative")
        if self.worker_resources is not None:
            _check_resources(self.worker_resources)

    # -- derived values -------------------------------------------------------------------------------
    @property
    def scheduler_address(self) -> str:
        """The address workers connect to: the job pod's IP (no cluster DNS needed)."""
        host = f"[{self.pod_ip}]" if ":" in self.pod_ip else self.pod_ip
        return f"tcp://{host}:{self.scheduler_port}"

    @property
    def nthreads(self) -> int:
        """Threads per worker: DOK_WORKER_NTHREADS, else the CPU limit (or request) rounded up, else 1."""
        if self.worker_nthreads is not None:
            return self.worker_nthreads
        for kind in ("limits", "requests"):
            cpu = ((self.worker_resources or {}).get(kind) or {}).get("cpu")
            if cpu:
                return max(1, math.ceil(_cpu_cores(cpu)))
        return 1

    @property
    def worker_failure_budget(self) -> int:
        """How many already-joined workers may crash (and be replaced) before the run fails."""
        if self.max_worker_failures is not None:
            return self.max_worker_failures
        return 2 * self.max_workers + 1

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def resolve(cls, environ: Mapping[str, str], *, defaults: Mapping[str, Any] | None = None,
                **overrides: Any) -> RunnerConfig:
        """Build the config: `overrides` (explicit arguments, None = unset) > `environ` (DOK_*) > `defaults`
        (e.g. values of the DaskOnKubernetesEnvironment) > the class defaults."""
        known = {f.name for f in fields(cls)}
        unknown = (set(overrides) | set(defaults or {})) - known
        if unknown:
            raise ConfigError(f"unknown runner setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if v is not None}
        for name in known:
            raw = environ.get(_var(name))
            if raw is not None and raw.strip() != "":
                values[name] = _parse(name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        missing = [n for n in ("identifier", "flow_name", "image", "namespace", "pod_name", "pod_uid", "pod_ip")
                   if n not in values]
        if missing:
            raise ConfigError(f"missing job pod environment: {', '.join(_var(n) for n in missing)}",
                              hint="the launcher sets these; to run by hand, export them "
                                   "(DOK_POD_* come from the downward API)")
        return cls(**values)


_ENV_NAMES = {"bundle_sha256": "DOK_BUNDLE_SHA256"}
_INTS = {"min_workers", "max_workers", "worker_nthreads", "scheduler_port", "adapt_wait_count",
         "max_worker_failures"}
_FLOATS = {"worker_start_timeout", "worker_death_timeout", "adapt_interval", "watch_interval",
           "adapt_target_duration"}
_JSON = {"parameters", "worker_resources"}


def _var(name: str) -> str:
    return _ENV_NAMES.get(name, "DOK_" + name.upper())


def _parse(name: str, raw: str) -> Any:
    raw = raw.strip()
    if name in _INTS:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{_var(name)}={raw!r} is not an integer") from None
    if name in _FLOATS:
        try:
            return float(raw.removesuffix("s"))
        except ValueError:
            raise ConfigError(f"{_var(name)}={raw!r} is not a number of seconds") from None
    if name in _JSON:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{_var(name)} is not valid JSON ({e.msg} at position {e.pos}): {raw[:80]!r}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{_var(name)} must be a JSON object, got {type(value).__name__}: {raw[:80]!r}")
        return value
    return raw


def _check_resources(resources: Any) -> None:
    if not isinstance(resources, dict) or set(resources) - {"requests", "limits"}:
        raise ConfigError(f"DOK_WORKER_RESOURCES={resources!r} must look like "
                          '{"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}')
    for kind, values in resources.items():
        if not isinstance(values, dict):
            raise ConfigError(f"DOK_WORKER_RESOURCES[{kind!r}] must be an object, got {values!r}")
        for resource, quantity in values.items():
            if not isinstance(quantity, (str, int, float)) or not _QUANTITY.match(str(quantity)):
                raise ConfigError(f"DOK_WORKER_RESOURCES[{kind!r}][{resource!r}]={quantity!r} is not a "
                                  "Kubernetes quantity", hint='e.g. "500m", "2", "1Gi"')


def _cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    try:
        return float(text)
    except ValueError:
        return 1.0
