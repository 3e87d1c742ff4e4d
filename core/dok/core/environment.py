"""`DaskOnKubernetesEnvironment`: where and how a flow runs on Kubernetes, as a frozen, validated value.

    env = DaskOnKubernetesEnvironment(
        registry_url="localhost:5000", python_dependencies=["pandas==2.2.3"], max_workers=4,
    )
    built = env.build(flow)            # dok.builder: image with the flow bundle; returns a new env
    built.execute(parameters={...})    # dok.launcher: a Kubernetes Job; returns a RunHandle
    built.run("/opt/dok/flow.dokflow") # dok.runner: inside the job's pod

The constructor takes the seed API's arguments in the seed's order (base_image, registry_url,
python_dependencies, image_name, image_tag, env_vars, files, max_workers; positional or keyword), then,
keyword-only, min_workers, namespace (None: the kubeconfig context's namespace, resolved by the launcher
when it connects), secret_env (NAME -> 'SECRET:KEY': environment variables the job and worker pods take
from Kubernetes Secrets at run time, so the values never enter the image) and result_location (an fsspec URL
the runner writes the run's results to, read back by `dok result ID` / `RunHandle.result()`; the image
gets the URL scheme's fsspec backend, e.g. s3fs for s3://). Every value is checked when the
object is made; a bad one raises `EnvironmentConfigError` naming the argument and what is allowed. The run
settings it carries (workers, namespace, secret_env) obey the same rules as `RunSpec` (`check_setting`),
and `run_spec(...)` turns the environment into the `RunSpec` of one run. Keyword-only pod settings
(`POD_SETTINGS`: job/worker resources, node selectors, tolerations, affinity, labels, annotations, priority
class, service account, job/worker pod templates, image pull secrets, `create_pull_secret`, the worker
`backend`, `worker_processes`) are RunSpec settings too; templates may be file paths,
read by the launcher. `flow_name` and `bundle_sha256` are filled in by `build`; `.image` is the full image
reference once built. `to_dict()`/`from_dict()` round-trip through JSON (the image carries it as
/opt/dok/environment.json).

The methods delegate to the other dok packages, imported only when called: a missing package raises
NotImplementedError that names it and how to install it.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import warnings
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Mapping

from .exceptions import EnvironmentConfigError, SecretEnvVarWarning
from .names import (BUNDLE_PATH, DOK_ROOT, RESERVED_ENV_PREFIX, is_env_name, is_image_name, is_image_reference,
                    is_image_tag, is_registry, is_sha256, looks_secret, split_secret_ref)
from .runspec import RunSettingError, RunSpec, check_setting, check_worker_processes, check_worker_range

__all__ = ["POD_SETTINGS", "DaskOnKubernetesEnvironment", "default_base_image", "is_template_path", "looks_secret",
           "split_secret_ref"]

RESERVED_DIR = DOK_ROOT


def default_base_image() -> str:
    """`python:<this interpreter's major.minor>-slim`: the image must run the same Python as the client,
    because the flow bundle is pickled."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


# Pod settings the environment carries -> the RunSpec setting each one is (same rules, same meaning).
POD_SETTINGS: dict[str, str] = {
    "job_resources": "resources", "worker_resources": "worker_resources", "node_selector": "node_selector",
    "worker_node_selector": "worker_node_selector", "tolerations": "tolerations",
    "worker_tolerations": "worker_tolerations", "affinity": "affinity", "worker_affinity": "worker_affinity",
    "labels": "labels", "annotations": "annotations", "priority_class": "priority_class",
    "service_account": "service_account_name", "job_template": "job_template",
    "worker_template": "worker_template", "image_pull_secrets": "image_pull_secrets",
    "create_pull_secret": "create_pull_secret", "backend": "backend", "worker_processes": "worker_processes",
}
TEMPLATE_FIELDS = ("job_template", "worker_template")
_TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")


def is_template_path(value: Any) -> bool:
    """A template given as a file path (one line ending in .yaml, .yml or .json), not as the YAML itself."""
    return (isinstance(value, str) or hasattr(value, "__fspath__")) and "\n" not in str(value) \
        and str(value).strip().lower().endswith(_TEMPLATE_SUFFIXES)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__fspath__"):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _bad(arg: str, value: Any, allowed: str) -> EnvironmentConfigError:
    return EnvironmentConfigError(f"DaskOnKubernetesEnvironment({arg}={value!r}): {allowed}")


@dataclass(frozen=True)
class DaskOnKubernetesEnvironment:
    """An environment that builds an image with the flow and runs it as a Kubernetes Job with an
    autoscaling Dask cluster (min_workers..max_workers worker pods). See the module docstring."""

    base_image: str = field(default_factory=default_base_image)
    registry_url: str | None = None
    python_dependencies: tuple[str, ...] = ()
    image_name: str | None = None
    image_tag: str | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict, hash=False)
    files: Mapping[str, str] = field(default_factory=dict, hash=False)
    max_workers: int = 1
    _: KW_ONLY
    min_workers: int = 0
    namespace: str | None = None
    secret_env: Mapping[str, str] = field(default_factory=dict, hash=False)
    result_location: str | None = None
    flow_name: str | None = None
    bundle_sha256: str | None = None
    # pod customisation (run settings, RunSpec's rules; None = RunSpec's default; README "Running on a real
    # cluster"): job_resources is RunSpec's `resources`, service_account its `service_account_name`
    job_resources: Mapping[str, Mapping[str, str]] | None = field(default=None, hash=False)
    worker_resources: Mapping[str, Mapping[str, str]] | None = field(default=None, hash=False)
    node_selector: Mapping[str, str] | None = field(default=None, hash=False)
    worker_node_selector: Mapping[str, str] | None = field(default=None, hash=False)
    tolerations: Any = field(default=None, hash=False)
    worker_tolerations: Any = field(default=None, hash=False)
    affinity: Mapping[str, Any] | None = field(default=None, hash=False)
    worker_affinity: Mapping[str, Any] | None = field(default=None, hash=False)
    labels: Mapping[str, str] | None = field(default=None, hash=False)
    annotations: Mapping[str, str] | None = field(default=None, hash=False)
    priority_class: str | None = None
    service_account: str | None = None
    job_template: Any = field(default=None, hash=False)     # a pod spec: dict, YAML text or a file path
    worker_template: Any = field(default=None, hash=False)
    # pulling the image (docs/registry.md) and where workers come from (docs/operator.md)
    image_pull_secrets: Any = field(default=None, hash=False)  # names of existing Secrets
    create_pull_secret: bool | None = None  # the launcher makes one from the build's registry credentials
    backend: str | None = None              # "pods" (dok's own worker pods) or "operator" (dask-kubernetes)
    worker_processes: int | None = None     # Dask workers per worker pod (None: 1); max_workers a multiple of it

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not is_image_reference(self.base_image):
            raise _bad("base_image", self.base_image,
                       "must be an image reference like 'python:3.11-slim' or 'registry:5000/team/img:tag'")
        if self.registry_url is not None:
            if not isinstance(self.registry_url, str) or "://" in self.registry_url:
                raise _bad("registry_url", self.registry_url,
                           "must be a registry host[:port][/path] without a scheme, e.g. 'localhost:5000'")
            url = self.registry_url.rstrip("/")
            if not is_registry(url):
                raise _bad("registry_url", self.registry_url,
                           "must be a registry host[:port][/lowercase/path], e.g. 'localhost:5000'")
            set_(self, "registry_url", url)
        set_(self, "python_dependencies", self._dependencies(self.python_dependencies))
        if self.image_name is not None and not is_image_name(self.image_name):
            raise _bad("image_name", self.image_name,
                       "must be a Docker repository name: lowercase letters, digits and separators "
                       "('.', '_', '__', '-'), components joined by '/', at most 255 characters")
        if self.image_tag is not None and not is_image_tag(self.image_tag):
            raise _bad("image_tag", self.image_tag,
                       "must be a Docker tag: letters, digits, '_', '.', '-', not starting with '.' or '-', "
                       "at most 128 characters")
        set_(self, "env_vars", self._env_vars(self.env_vars))
        set_(self, "files", self._files(self.files))
        if self.secret_env is None:
            set_(self, "secret_env", {})
        try:  # the run settings it carries: RunSpec's rules
            for name in ("max_workers", "min_workers", "namespace", "secret_env", "result_location"):
                set_(self, name, check_setting(name, getattr(self, name)))
            check_worker_range(self.min_workers, self.max_workers)
        except RunSettingError as exc:
            raise _bad(exc.setting, exc.value, exc.problem) from None
        for name, setting_name in POD_SETTINGS.items():
            value = getattr(self, name)
            if value is None or (name in TEMPLATE_FIELDS and is_template_path(value)):
                continue
            try:
                set_(self, name, check_setting(setting_name, value))
            except RunSettingError as exc:
                raise _bad(name, exc.value, exc.problem) from None
        if self.worker_processes is not None:
            try:
                check_worker_processes(self.worker_processes, max_workers=self.max_workers,
                                       backend=self.backend or "pods")
            except RunSettingError as exc:
                raise _bad(exc.setting, exc.value, exc.problem) from None
        for name in self.secret_env:
            if name in self.env_vars:
                raise _bad("secret_env", name, "is also in env_vars: keep it in one of them (secret_env for secrets)")
        if self.flow_name is not None and (not isinstance(self.flow_name, str) or not self.flow_name.strip()):
            raise _bad("flow_name", self.flow_name, "must be a non-empty string or None")
        if self.bundle_sha256 is not None and not is_sha256(self.bundle_sha256):
            raise _bad("bundle_sha256", self.bundle_sha256, "must be 64 lowercase hex characters or None")

    @staticmethod
    def _dependencies(value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str) or not hasattr(value, "__iter__"):
            raise _bad("python_dependencies", value, "must be a list of pip requirement strings, e.g. ['pandas==2.2.3']")
        deps = tuple(value)
        for dep in deps:
            if not isinstance(dep, str) or not dep.strip() or dep.strip().startswith("-") or any(c in dep for c in "\n\r\0"):
                raise _bad("python_dependencies", dep,
                           "each entry must be one pip requirement (e.g. 'pandas==2.2.3'), not empty, not a "
                           "pip option, no newlines")
        return tuple(d.strip() for d in deps)

    @staticmethod
    def _env_vars(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise _bad("env_vars", value, "must be a dict of NAME -> string value")
        for k, v in value.items():
            if not is_env_name(k):
                raise _bad("env_vars", k, "names must match [A-Za-z_][A-Za-z0-9_]*")
            if not isinstance(v, str):
                raise _bad("env_vars", {k: v}, f"the value of {k} must be a string (use str(...))")
            if k.startswith(RESERVED_ENV_PREFIX):
                raise _bad("env_vars", k, f"names starting with {RESERVED_ENV_PREFIX} are reserved for dok")
            if looks_secret(k):
                warnings.warn(f"env_vars[{k!r}] looks like a secret, but env_vars are stored in the image where "
                              f"anyone who can pull it can read them; pass it from a Kubernetes Secret instead "
                              f"(secret_env={{{k!r}: 'SECRET:KEY'}}, or dok run --secret-env {k}=SECRET:KEY)",
                              SecretEnvVarWarning, stacklevel=4)
        return dict(value)

    @staticmethod
    def _files(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise _bad("files", value, "must be a dict of local source path -> absolute path in the image")
        out: dict[str, str] = {}
        for src, dest in value.items():
            src_s = str(src) if hasattr(src, "__fspath__") else src
            if not isinstance(src_s, str) or not src_s:
                raise _bad("files", src, "source paths must be non-empty strings or path objects")
            if not isinstance(dest, str) or not dest.startswith("/") or "\0" in dest or "\n" in dest:
                raise _bad("files", {src_s: dest}, "destinations must be absolute paths in the image, e.g. '/app/data.csv'")
            norm = "/" + "/".join(p for p in dest.split("/") if p and p != ".")
            if ".." in norm.split("/"):
                raise _bad("files", {src_s: dest}, "destinations must not contain '..'")
            if norm == RESERVED_DIR or norm.startswith(RESERVED_DIR + "/"):
                raise _bad("files", {src_s: dest}, f"{RESERVED_DIR} is reserved for dok (bundle, venv)")
            out[src_s] = dest
        return out

    # -- derived values --------------------------------------------------------------------------
    @property
    def image(self) -> str | None:
        """The full image reference (`registry/name:tag`) once built, else None."""
        if self.bundle_sha256 is None or not self.image_name or not self.image_tag:
            return None
        name = f"{self.registry_url}/{self.image_name}" if self.registry_url else self.image_name
        return f"{name}:{self.image_tag}"

    def run_spec(self, **settings: Any) -> RunSpec:
        """The `RunSpec` of one run of this environment: its flow name, image, namespace, workers and Secret
        references, with `settings` (RunSpec fields; None = unset) on top. `secret_env` entries add to the
        environment's (the same NAME: the argument wins)."""
        given = {k: v for k, v in settings.items() if v is not None}
        values: dict[str, Any] = {"flow_name": self.flow_name, "image": self.image, "namespace": self.namespace,
                                  "min_workers": self.min_workers, "max_workers": self.max_workers,
                                  "result_location": self.result_location}
        values.update({setting: getattr(self, name) for name, setting in POD_SETTINGS.items()})
        values = {k: v for k, v in values.items() if v is not None}
        values.update(given)
        for name in TEMPLATE_FIELDS:
            if is_template_path(values.get(name)):
                raise _bad(name, values[name], "is a file path: the launcher reads it (dok run, execute()); pass "
                           "the pod spec itself (a dict or YAML text) here")
        values["secret_env"] = {**self.secret_env, **dict(given.get("secret_env") or {})}
        return RunSpec(**values)

    def with_image(self, **changes: Any) -> "DaskOnKubernetesEnvironment":
        """A copy with some fields changed (validated again), e.g. what `build` fills in:
        `env.with_image(image_name=..., image_tag=..., flow_name=..., bundle_sha256=...)`."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (`from_dict` inverts it)."""
        return {
            "base_image": self.base_image,
            "registry_url": self.registry_url,
            "python_dependencies": list(self.python_dependencies),
            "image_name": self.image_name,
            "image_tag": self.image_tag,
            "env_vars": dict(self.env_vars),
            "secret_env": dict(self.secret_env),
            "files": dict(self.files),
            "max_workers": self.max_workers,
            "min_workers": self.min_workers,
            "namespace": self.namespace,
            "result_location": self.result_location,
            "flow_name": self.flow_name,
            "bundle_sha256": self.bundle_sha256,
            **{name: _jsonable(getattr(self, name)) for name in POD_SETTINGS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DaskOnKubernetesEnvironment":
        if not isinstance(data, Mapping):
            raise EnvironmentConfigError(f"environment data must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EnvironmentConfigError(
                f"unknown DaskOnKubernetesEnvironment field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        kwargs = dict(data)
        if kwargs.get("python_dependencies") is not None:
            kwargs["python_dependencies"] = tuple(kwargs["python_dependencies"])
        return cls(**kwargs)

    # -- delegation to the other packages ------------------------------------------------------------
    def build(self, flow: Any, push: bool = True) -> "DaskOnKubernetesEnvironment":
        """Build (and push) the image with `flow`; returns the built environment (dok.builder)."""
        return _delegate("builder", "build")(self, flow, push=push)

    def setup(self) -> Any:
        """Prepare the namespace (RBAC for the job to create worker pods) (dok.launcher)."""
        return _delegate("launcher", "setup")(self)

    def execute(self, **kwargs: Any) -> Any:
        """Start a run as a Kubernetes Job; returns a RunHandle (`.identifier`, `.wait()`) (dok.launcher)."""
        return _delegate("launcher", "execute")(self, **kwargs)

    def run(self, environment_file_path: str = BUNDLE_PATH) -> Any:
        """Inside the job's pod: load the flow bundle at `environment_file_path` and run it on an adaptive
        cluster (dok.runner); returns the flow's State."""
        return _delegate("runner", "run")(self, environment_file_path)


def _delegate(package: str, function: str) -> Any:
    module_name = f"dok.{package}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, "dok"):
            raise NotImplementedError(
                f"DaskOnKubernetesEnvironment.{function}() needs the {module_name} package, which is not "
                f"installed: install dok-{package} (pip install ./{package})"
            ) from None
        raise
    fn = getattr(module, function, None)
    if fn is None:
        raise NotImplementedError(f"{module_name} does not provide {function}() yet")
    return fn
