"""The run's image pull Secret: made by `dok` from the registry credentials the build used, when asked.

`dok run --create-pull-secret` (or `execute(env, create_pull_secret=True)`) creates one Secret of type
`kubernetes.io/dockerconfigjson` for the registry of the run's image, before the Job:

- the credentials are the ones the builder pushed with: explicit ones (`RegistryCredentials`), else
  `DOK_REGISTRY_USERNAME` / `DOK_REGISTRY_PASSWORD`, else the registry's entry in docker's
  `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; a plain `auth` entry, not a
  credential helper). They go into the Secret only, never into the image or the Job manifest;
- the Secret carries the run's labels (`dok.dev/identifier`, `app.kubernetes.io/managed-by=dok`,
  `app.kubernetes.io/component=pull-secret`), is named after the Job (`<job>-pull`) and is added to the
  run's `image_pull_secrets` (worker pods inherit them from the job pod);
- once the Job exists the Secret gets an ownerReference to it, so the garbage collector deletes it with the
  Job (also after the Job's TTL); `RunHandle.cleanup` / `dok cleanup` delete it by label too (`sweep`);
- the caller must be allowed to create, get, list and delete Secrets: checked first (one PermissionDenied
  naming what is missing), so nothing is created when a right is missing. A Job that cannot be created
  takes its Secret with it.

The manifest builders are pure (unit-tested); `create`, `adopt` and `sweep` are the small Kubernetes steps.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dok.core.runspec import RunSpec
from dok.kube import Forbidden

from .exceptions import ConfigError, PermissionDenied
from .kube import Access, Kube
from .manifests import job_name_of, run_labels

COMPONENT = "pull-secret"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DOCKER_HUB = "docker.io"
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
ENV_USERNAME = "DOK_REGISTRY_USERNAME"  # the builder's variables (dok.builder.config): the same credentials
ENV_PASSWORD = "DOK_REGISTRY_PASSWORD"
SECRET_RIGHTS: tuple[str, ...] = ("create", "get", "list", "delete")


@dataclass(frozen=True, kw_only=True)
class RegistryCredentials:
    """A user name and password (or token) for one registry (`host[:port]`)."""

    registry: str
    username: str
    password: str = field(repr=False)


def registry_of(image: str) -> str:
    """The registry host of an image reference, the way docker reads it: the first path component when it
    has a '.' or ':' or is 'localhost', else Docker Hub (`docker.io`)."""
    first, sep, _rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def _config_keys(registry: str) -> tuple[str, ...]:
    if registry == DOCKER_HUB:
        return DOCKER_HUB_KEYS
    return (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/",
            f"https://{registry}/v2/")


def docker_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("DOCKER_CONFIG") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def credentials_from_docker_config(registry: str, config: Mapping[str, Any]) -> RegistryCredentials | None:
    """The registry's `auths` entry of a docker config.json (`auth` = base64 of 'user:password', or
    `username`/`password`); None when there is none."""
    auths = config.get("auths") or {}
    for key in _config_keys(registry):
        entry = auths.get(key)
        if not isinstance(entry, Mapping):
            continue
        if entry.get("username") and entry.get("password") is not None:
            return RegistryCredentials(registry=registry, username=str(entry["username"]),
                                       password=str(entry["password"]))
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            if sep and user:
                return RegistryCredentials(registry=registry, username=user, password=password)
    return None


def resolve_credentials(image: str, *, given: RegistryCredentials | None = None,
                        environ: Mapping[str, str] | None = None,
                        docker_config: Mapping[str, Any] | None = None) -> RegistryCredentials:
    """The credentials for `image`'s registry: `given` > DOK_REGISTRY_USERNAME/PASSWORD > docker's
    config.json (read from `environ`'s DOCKER_CONFIG/HOME when `docker_config` is None). ConfigError
    (exit 2) when there are none, naming the registry and how to give them."""
    env = os.environ if environ is None else environ
    registry = registry_of(image)
    if given is not None:
        return RegistryCredentials(registry=registry, username=given.username, password=given.password)
    if env.get(ENV_USERNAME):
        return RegistryCredentials(registry=registry, username=env[ENV_USERNAME], password=env.get(ENV_PASSWORD, ""))
    if docker_config is None:
        path = docker_config_path(env)
        try:
            docker_config = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            docker_config = {}
    found = credentials_from_docker_config(registry, docker_config)
    if found is None:
        raise ConfigError(f"--create-pull-secret: no credentials for registry {registry} (image {image})",
                          hint=f"set {ENV_USERNAME} and {ENV_PASSWORD} (the ones the build pushed with), or "
                               f"`docker login {registry}`; or create the Secret yourself and pass its name in "
                               "image_pull_secrets")
    return found


def secret_name(spec: RunSpec) -> str:
    """`<job name>-pull`: unique per run (the Job's name holds part of the identifier)."""
    return f"{job_name_of(spec)}-pull"


def docker_config_json(credentials: RegistryCredentials) -> str:
    """The `.dockerconfigjson` the kubelet reads: one `auths` entry for the registry."""
    auth = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    entry = {"username": credentials.username, "password": credentials.password, "auth": auth}
    return json.dumps({"auths": {credentials.registry: entry}}, sort_keys=True)


def pull_secret_manifest(spec: RunSpec, credentials: RegistryCredentials) -> dict[str, Any]:
    """The v1 Secret (type kubernetes.io/dockerconfigjson) for one run, labelled with its identifier."""
    if spec.namespace is None:
        raise ConfigError("the run has no namespace yet", hint="resolve the namespace before making its Secret")
    data = base64.b64encode(docker_config_json(credentials).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {"name": secret_name(spec), "namespace": spec.namespace,
                     "labels": run_labels(spec.identifier, spec.flow_name, COMPONENT)},
        "data": {".dockerconfigjson": data},
    }


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to the created Job: the garbage collector deletes the Secret with it."""
    meta = job.get("metadata") or {}
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"]}


def with_owner(secret: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """`secret` (as read back) with the Job as its owner."""
    out = dict(secret)
    meta = dict(out.get("metadata") or {})
    meta["ownerReferences"] = [*(meta.get("ownerReferences") or []), owner_reference(job)]
    out["metadata"] = meta
    return out


def with_pull_secret(spec: RunSpec) -> RunSpec:
    """The spec with its own pull Secret among `image_pull_secrets` (first: the kubelet tries them in order)."""
    name = secret_name(spec)
    return spec.replace(image_pull_secrets=(name, *(n for n in spec.image_pull_secrets if n != name)))


# -- the Kubernetes steps -------------------------------------------------------------------------------------
def check_rights(kube: Kube, namespace: str) -> None:
    """PermissionDenied naming every Secret right the caller lacks in `namespace` (nothing is created)."""
    missing = [verb for verb in SECRET_RIGHTS
               if not kube.can_i(Access(verb=verb, resource="secrets", namespace=namespace))[0]]
    if missing:
        raise PermissionDenied(f"--create-pull-secret: you may not {', '.join(missing)} secrets in namespace "
                               f"{namespace!r}",
                               hint="ask a cluster admin for these verbs on secrets, or create the pull Secret "
                                    "once yourself and pass its name in image_pull_secrets")


def create(kube: Kube, manifest: Mapping[str, Any]) -> None:
    kube.create(manifest)


def adopt(kube: Kube, manifest: Mapping[str, Any], job: Mapping[str, Any]) -> None:
    """Make the created Job the Secret's owner (best effort: labels still let cleanup find it)."""
    meta = manifest["metadata"]
    current = kube.read("Secret", meta["namespace"], meta["name"])
    if current is not None and (job.get("metadata") or {}).get("uid"):
        kube.replace(with_owner(current, job))


def discard(kube: Kube, manifest: Mapping[str, Any]) -> None:
    """Delete the Secret (the Job could not be created)."""
    meta = manifest["metadata"]
    kube.delete("Secret", meta["namespace"], meta["name"])


def sweep(kube: Kube, namespace: str, selector: str) -> list[str]:
    """Delete the run's pull Secrets (by label); returns those that were still there. A caller who may not
    list secrets cannot have had dok create one: nothing to do."""
    try:
        secrets = kube.list("Secret", namespace, selector)
    except Forbidden:
        return []
    for secret in secrets:
        name = (secret.get("metadata") or {}).get("name")
        if name and not (secret.get("metadata") or {}).get("deletionTimestamp"):
            kube.delete("Secret", namespace, name)
    return [f"Secret/{(s.get('metadata') or {}).get('name')}" for s in secrets]
