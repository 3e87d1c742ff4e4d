"""The runner's settings, resolved once: explicit arguments > the job pod environment (DOK_*) > defaults.

The run's settings are core's `RunSpec`, read from the job pod environment the launcher wrote
(`RunSpec.from_env`: the one description of those variables, with its one set of checks). To it the runner
adds what only the pod knows: its own name, UID and IP (the downward API, `POD_FIELD_ENV`), the bundle's
sha256 (DOK_BUNDLE_SHA256, set in the image by the builder), where to write the termination message and the
scheduler's listen address. `RunnerConfig.resolve` builds it all into one frozen object so the rest of the
runner never touches `os.environ`; a missing or malformed value raises `ConfigError` (exit code 3) naming
the variable, the bad value and what is expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from dok.core.exceptions import EnvironmentConfigError
from dok.core.names import is_sha256
from dok.core.resources import process_threads, worker_nthreads
from dok.core.runspec import POD_FIELD_ENV, RunSpec, env_var
from dok.runner.exceptions import ConfigError

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LOG_ENV = "DOK_TERMINATION_LOG"
BUNDLE_SHA256_ENV = "DOK_BUNDLE_SHA256"     # set in the image by the builder (`ENV DOK_BUNDLE_SHA256=…`)
SCHEDULER_HOST_ENV = "DOK_SCHEDULER_HOST"
# What the pod knows about itself (the downward API): RunnerConfig field -> variable.
_POD_FACTS = {name.removeprefix("DOK_").lower(): name for name in POD_FIELD_ENV}
_REQUIRED_SETTINGS = ("identifier", "flow_name", "image", "namespace")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


@dataclass(frozen=True, kw_only=True)
class RunnerConfig:
    """The run's `spec` plus what only the job pod knows; `resolve()` builds it, `__post_init__` checks the
    pod's own facts (the RunSpec checked itself)."""

    spec: RunSpec
    pod_name: str                        # DOK_POD_NAME: the job pod (owner of the worker pods)
    pod_uid: str                         # DOK_POD_UID
    pod_ip: str                          # DOK_POD_IP: workers connect to tcp://<pod_ip>:<port>
    bundle_sha256: str | None = None     # DOK_BUNDLE_SHA256
    termination_log: str = DEFAULT_TERMINATION_LOG  # DOK_TERMINATION_LOG
    scheduler_host: str = "0.0.0.0"      # DOK_SCHEDULER_HOST

    def __post_init__(self) -> None:
        for name in ("pod_name", "pod_uid", "pod_ip"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{_POD_FACTS[name]} is missing or empty",
                                  hint="the launcher sets it in the job pod; run the runner through `dok run`")
        if not _IPV4.match(self.pod_ip) and ":" not in self.pod_ip:
            raise ConfigError(f"DOK_POD_IP={self.pod_ip!r} is not an IP address",
                              hint="set it from the downward API: fieldRef status.podIP")
        if self.spec.namespace is None or self.spec.image is None:
            raise ConfigError("the run's namespace and image must be set (DOK_NAMESPACE, DOK_IMAGE)")
        if self.bundle_sha256 is not None and not is_sha256(self.bundle_sha256):
            raise ConfigError(f"{BUNDLE_SHA256_ENV}={self.bundle_sha256!r} is not a sha256 (64 lowercase hex "
                              "characters)", hint="run an image built by `dok build`")

    # -- settings that are optional in a RunSpec but set in every job pod (checked above) ----------------------
    @property
    def namespace(self) -> str:
        return self.spec.namespace or ""

    @property
    def image(self) -> str:
        return self.spec.image or ""

    # -- derived values -------------------------------------------------------------------------------
    @property
    def scheduler_address(self) -> str:
        """The address workers connect to: the job pod's IP (no cluster DNS needed)."""
        host = f"[{self.pod_ip}]" if ":" in self.pod_ip else self.pod_ip
        return f"tcp://{host}:{self.spec.scheduler_port}"

    @property
    def nthreads(self) -> int:
        """Threads per Dask worker: DOK_WORKER_NTHREADS, else the worker container's CPU limit (or request)
        rounded up, else 1 (`dok.core.resources.worker_nthreads`), shared by the pod's `worker_processes`."""
        if self.spec.worker_nthreads is not None:
            return self.spec.worker_nthreads
        return process_threads(worker_nthreads(self.spec.worker_resources), self.spec.worker_processes)

    @property
    def worker_failure_budget(self) -> int:
        """How many already-joined workers may crash (and be replaced) before the run fails."""
        if self.spec.max_worker_failures is not None:
            return self.spec.max_worker_failures
        return 2 * self.spec.max_workers + 1

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def resolve(cls, environ: Mapping[str, str], *, defaults: Mapping[str, Any] | None = None,
                **overrides: Any) -> RunnerConfig:
        """Build the config: `overrides` (explicit arguments, None = unset) > `environ` (DOK_*) > `defaults`
        (e.g. values of the DaskOnKubernetesEnvironment) > the declared defaults. `overrides` and `defaults`
        take RunSpec settings and this class's own fields."""
        own = {f.name for f in fields(cls)} - {"spec"}
        settings = {f.name for f in fields(RunSpec)}
        unknown = (set(overrides) | set(defaults or {})) - own - settings
        if unknown:
            raise ConfigError(f"unknown runner setting(s): {', '.join(sorted(unknown))}")
        missing = [env_var(n) for n in _REQUIRED_SETTINGS if not environ.get(env_var(n)) and overrides.get(n) is None]
        missing += [var for name, var in _POD_FACTS.items() if not environ.get(var) and overrides.get(name) is None]
        if missing:
            raise ConfigError(f"missing job pod environment: {', '.join(sorted(missing))}",
                              hint="the launcher sets these; to run by hand, export them "
                                   "(DOK_POD_* come from the downward API)")
        try:
            spec = RunSpec.from_env(environ, defaults={k: v for k, v in (defaults or {}).items() if k in settings},
                                    overrides={k: v for k, v in overrides.items() if k in settings})
        except EnvironmentConfigError as exc:
            raise ConfigError(exc.message, hint=exc.hint) from None
        values: dict[str, Any] = {name: environ.get(var) for name, var in _POD_FACTS.items()}
        for name, var in (("bundle_sha256", BUNDLE_SHA256_ENV), ("termination_log", TERMINATION_LOG_ENV),
                          ("scheduler_host", SCHEDULER_HOST_ENV)):
            if environ.get(var, "").strip():
                values[name] = environ[var].strip()
        values = {k: v for k, v in values.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if k in own and v is not None})
        return cls(spec=spec, **values)

