"""`DaskOnKubernetesEnvironment`: where and how a flow runs on Kubernetes, as a frozen, validated value.

    env = DaskOnKubernetesEnvironment(
        registry_url="localhost:5000", python_dependencies=["pandas==2.2.3"], max_workers=4,
    )
    built = env.build(flow)            # dok.builder: image with the flow bundle; returns a new env
    built.execute(parameters={...})    # dok.launcher: a Kubernetes Job; returns a RunHandle
    built.run("/opt/dok/flow.dokflow") # dok.runner: inside the job's pod

The constructor takes the seed API's arguments (base_image, registry_url, python_dependencies,
image_name, image_tag, env_vars, files, max_workers) plus min_workers, namespace and secret_env (NAME ->
'SECRET:KEY': environment variables the job and worker pods take from Kubernetes Secrets at run time, so
the values never enter the image), keyword-only. Every
value is checked when the object is made; a bad one raises `EnvironmentConfigError` naming the argument
and what is allowed. `flow_name` and `bundle_sha256` are filled in by `build`; `.image` is the full image
reference once built. `to_dict()`/`from_dict()` round-trip through JSON (the image carries it as
/opt/dok/environment.json).

The methods delegate to the other dok packages, imported only when called: a missing package raises
NotImplementedError that names it and how to install it.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from .exceptions import EnvironmentConfigError, SecretEnvVarWarning

__all__ = ["DaskOnKubernetesEnvironment", "default_base_image", "split_secret_ref"]

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(rf"^{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])"
_REGISTRY = re.compile(rf"^{_HOST}(?::[0-9]{{1,5}})?(?:/{_NAME_COMPONENT})*$")
_REFERENCE = re.compile(
    rf"^(?:{_HOST}(?::[0-9]{{1,5}})?/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_WORDS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL")
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
RESERVED_DIR = "/opt/dok"


def looks_secret(name: str) -> bool:
    """True for names like API_TOKEN, DB_PASSWORD, AWS_SECRET_ACCESS_KEY: values that must not be baked into
    an image (pass them as references to Kubernetes Secrets instead)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def split_secret_ref(ref: Any) -> tuple[str, str]:
    """'SECRET:KEY' (or 'SECRET/KEY', or a (SECRET, KEY) pair) -> (secret, key): a Kubernetes Secret name and
    one of its keys. Otherwise ValueError(message, hint), the message naming the bad part. The one check of a
    secret reference, for the environment's `secret_env` and the launcher's `--secret-env`/`execute()`."""
    if isinstance(ref, str):
        secret, sep, key = ref.replace("/", ":", 1).partition(":")
        if not sep or not secret or not key:
            raise ValueError(f"malformed secret reference {ref!r}", "write SECRET:KEY, e.g. db-creds:password")
    elif isinstance(ref, (tuple, list)) and len(ref) == 2 and all(isinstance(x, str) for x in ref):
        secret, key = ref
    else:
        raise ValueError(f"malformed secret reference {ref!r}", "write SECRET:KEY, e.g. db-creds:password")
    if len(secret) > 253 or not _SECRET_NAME.match(secret):
        raise ValueError(f"invalid Secret name {secret!r}",
                         "lowercase letters, digits, '-' and '.', at most 253 characters")
    if not _SECRET_KEY.match(key):
        raise ValueError(f"invalid Secret key {key!r}", "letters, digits, '-', '_' and '.'")
    return secret, key


def default_base_image() -> str:
    """`python:<this interpreter's major.minor>-slim`: the image must run the same Python as the client,
    because the flow bundle is pickled."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def _bad(arg: str, value: Any, allowed: str) -> EnvironmentConfigError:
    return EnvironmentConfigError(f"DaskOnKubernetesEnvironment({arg}={value!r}): {allowed}")


@dataclass(frozen=True, kw_only=True)
class DaskOnKubernetesEnvironment:
    """An environment that builds an image with the flow and runs it as a Kubernetes Job with an
    autoscaling Dask cluster (min_workers..max_workers worker pods). See the module docstring."""

    base_image: str = field(default_factory=default_base_image)
    registry_url: str | None = None
    python_dependencies: tuple[str, ...] = ()
    image_name: str | None = None
    image_tag: str | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict, hash=False)
    secret_env: Mapping[str, str] = field(default_factory=dict, hash=False)
    files: Mapping[str, str] = field(default_factory=dict, hash=False)
    max_workers: int = 1
    min_workers: int = 0
    namespace: str = "default"
    flow_name: str | None = None
    bundle_sha256: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.base_image, str) or not _REFERENCE.match(self.base_image):
            raise _bad("base_image", self.base_image,
                       "must be an image reference like 'python:3.11-slim' or 'registry:5000/team/img:tag'")
        if self.registry_url is not None:
            if not isinstance(self.registry_url, str) or "://" in self.registry_url:
                raise _bad("registry_url", self.registry_url,
                           "must be a registry host[:port][/path] without a scheme, e.g. 'localhost:5000'")
            url = self.registry_url.rstrip("/")
            if not _REGISTRY.match(url):
                raise _bad("registry_url", self.registry_url,
                           "must be a registry host[:port][/lowercase/path], e.g. 'localhost:5000'")
            set_(self, "registry_url", url)
        set_(self, "python_dependencies", self._dependencies(self.python_dependencies))
        if self.image_name is not None and (
            not isinstance(self.image_name, str) or len(self.image_name) > 255 or not _IMAGE_NAME.match(self.image_name)
        ):
            raise _bad("image_name", self.image_name,
                       "must be a Docker repository name: lowercase letters, digits and separators "
                       "('.', '_', '__', '-'), components joined by '/', at most 255 characters")
        if self.image_tag is not None and (not isinstance(self.image_tag, str) or not _TAG.match(self.image_tag)):
            raise _bad("image_tag", self.image_tag,
                       "must be a Docker tag: letters, digits, '_', '.', '-', not starting with '.' or '-', "
                       "at most 128 characters")
        set_(self, "env_vars", self._env_vars(self.env_vars))
        set_(self, "secret_env", self._secret_env(self.secret_env, self.env_vars))
        set_(self, "files", self._files(self.files))
        for arg, low in (("max_workers", 1), ("min_workers", 0)):
            v = getattr(self, arg)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise _bad(arg, v, f"must be an integer >= {low}")
        if self.min_workers > self.max_workers:
            raise _bad("min_workers", self.min_workers, f"must be <= max_workers ({self.max_workers})")
        if not isinstance(self.namespace, str) or len(self.namespace) > 63 or not _DNS_LABEL.match(self.namespace):
            raise _bad("namespace", self.namespace,
                       "must be a Kubernetes namespace name (DNS-1123 label): lowercase letters, digits and "
                       "'-', starting and ending with a letter or digit, at most 63 characters")
        if self.flow_name is not None and (not isinstance(self.flow_name, str) or not self.flow_name.strip()):
            raise _bad("flow_name", self.flow_name, "must be a non-empty string or None")
        if self.bundle_sha256 is not None and (
            not isinstance(self.bundle_sha256, str) or not _SHA256.match(self.bundle_sha256)
        ):
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
            if not isinstance(k, str) or not _ENV_NAME.match(k):
                raise _bad("env_vars", k, "names must match [A-Za-z_][A-Za-z0-9_]*")
            if not isinstance(v, str):
                raise _bad("env_vars", {k: v}, f"the value of {k} must be a string (use str(...))")
            if k.startswith("DOK_"):
                raise _bad("env_vars", k, "names starting with DOK_ are reserved for dok")
            if looks_secret(k):
                warnings.warn(f"env_vars[{k!r}] looks like a secret, but env_vars are stored in the image where "
                              f"anyone who can pull it can read them; pass it from a Kubernetes Secret instead "
                              f"(secret_env={{{k!r}: 'SECRET:KEY'}}, or dok run --secret-env {k}=SECRET:KEY)",
                              SecretEnvVarWarning, stacklevel=4)
        return dict(value)

    @staticmethod
    def _secret_env(value: Any, env_vars: Mapping[str, str]) -> dict[str, str]:
        """NAME -> 'SECRET:KEY' (also accepted: 'SECRET/KEY' or a (SECRET, KEY) pair), normalized to 'SECRET:KEY'."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise _bad("secret_env", value, "must be a dict of NAME -> 'SECRET:KEY' (a Kubernetes Secret and its key)")
        out: dict[str, str] = {}
        for k, ref in value.items():
            if not isinstance(k, str) or not _ENV_NAME.match(k):
                raise _bad("secret_env", k, "names must match [A-Za-z_][A-Za-z0-9_]*")
            if k.startswith("DOK_"):
                raise _bad("secret_env", k, "names starting with DOK_ are reserved for dok")
            if k in env_vars:
                raise _bad("secret_env", k, "is also in env_vars: keep it in one of them (secret_env for secrets)")
            try:
                secret, key = split_secret_ref(ref)
            except ValueError:
                raise _bad("secret_env", {k: ref},
                           "each value must be 'SECRET:KEY': a Kubernetes Secret name (lowercase letters, digits, "
                           "'-', '.') and one of its keys (letters, digits, '-', '_', '.'), e.g. 'db-creds:password'"
                           ) from None
            out[k] = f"{secret}:{key}"
        return out

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
            "flow_name": self.flow_name,
            "bundle_sha256": self.bundle_sha256,
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

    def run(self, path: str = "/opt/dok/flow.dokflow") -> Any:
        """Inside the job's pod: load the bundle at `path` and run it on an adaptive cluster (dok.runner)."""
        return _delegate("runner", "run")(self, path)


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
