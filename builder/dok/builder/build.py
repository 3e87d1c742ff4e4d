"""`build(env, flow)`: turn a flow and its environment into an image the launcher and runner can use.

1. Plan (no docker): dump the flow bundle, resolve the image name, the runtime pins (the client's exact
   dask/distributed/cloudpickle/kubernetes/tenacity/bokeh versions), the dok package sources, the user's files; render the
   Dockerfile; assemble the context in memory.
2. Connect to dockerd; make sure the base image exists; default tag = content hash of the context, the
   base image ID and the environment spec.
3. When pushing, ask the registry first (reachable? credentials accepted? tag already there?).
4. Skip the build when the content-hash tag already exists (locally, or in the registry when pushing);
   otherwise build with live progress (the last RUN is the health check), then push.
Returns a new environment with image_name/image_tag/registry_url/flow_name/bundle_sha256 set.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from dok.builder import docker_adapter as docker
from dok.builder import dockerfile as df
from dok.builder.config import BuildConfig, default_base_image
from dok.builder.context import BuildContext, ContextFile, dok_package_files, user_files
from dok.builder.exceptions import BuilderError, InvalidInputError
from dok.builder.naming import (
    image_name_from_flow,
    image_reference,
    validate_image_name,
    validate_image_tag,
    validate_registry_url,
)
from dok.builder.progress import BuildEvent, ProgressCallback, print_progress

# tenacity: dok.kube retries; bokeh: the scheduler's dashboard (only the job pod imports it, workers run --no-dashboard)
RUNTIME_PACKAGES = ("dask", "distributed", "cloudpickle", "kubernetes", "tenacity", "bokeh")
DOK_PACKAGES = ("core", "kube", "runner")  # the runner reaches the cluster through dok.kube
_HEALTHCHECK_SOURCE = Path(__file__).with_name("image_healthcheck.py")


def runtime_pins(packages: tuple[str, ...] = RUNTIME_PACKAGES) -> dict[str, str | None]:
    """{distribution: the client's installed version}; None (unpinned, unchecked) when not installed here."""
    pins: dict[str, str | None] = {}
    for name in packages:
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pins[name] = None
    return pins


def result_store_packages(location: str | None) -> tuple[str, ...]:
    """What the image needs to write results to `location` (dok.core.results.backend_packages), with fsspec
    pinned next to it: () for none or a local file URL; ("fsspec", "s3fs") for s3://. Pinned like the runtime
    packages (the client's versions, i.e. requirements.lock), so the image never carries s3fs unless needed."""
    from dok.core.results import backend_packages

    backends = backend_packages(location)
    return ("fsspec", *backends) if backends else ()


def client_python() -> str:
    return "%d.%d" % sys.version_info[:2]


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """Everything decided before talking to docker."""

    env: Any  # DaskOnKubernetesEnvironment with name/flow/bundle fields set (image_tag as given)
    image_name: str
    registry_url: str | None
    explicit_tag: str | None
    base_image: str
    flow_name: str
    bundle_sha256: str
    bundle: bytes
    dockerfile: str
    context: BuildContext  # without environment.json (it contains the tag)
    dok_packages: tuple[str, ...]
    python_dependencies: tuple[str, ...]


def resolve_base_image(requested: str | None, config: BuildConfig) -> str:
    """The environment's base image; when it is left at core's default (`python:X.Y-slim`),
    DOK_BASE_IMAGE (e.g. a local `dok-base:bookworm-py3.11` on machines without Docker Hub) replaces it."""
    if not requested:
        return config.default_base_image
    if requested == default_base_image():
        return config.default_base_image
    return requested


def _as_mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{field} must be a mapping, got {type(value).__name__}")
    return value


def plan_build(env: Any, flow: Any, config: BuildConfig) -> BuildPlan:
    from dok.core import bundle

    data, info = bundle.dumps(flow)
    flow_name = str(getattr(flow, "name", "") or "flow")
    image_name = validate_image_name(env.image_name) if env.image_name else image_name_from_flow(flow_name)
    registry = validate_registry_url(env.registry_url) if env.registry_url else None
    explicit_tag = validate_image_tag(env.image_tag) if env.image_tag else None
    base_image = resolve_base_image(env.base_image, config)
    dependencies = tuple(str(d) for d in (env.python_dependencies or ()))
    env_vars = df.validate_env_vars(_as_mapping(env.env_vars, "env_vars"))

    files: list[ContextFile] = []
    if config.ca_bundle:
        files.append(ContextFile(path=df.CTX_CA_BUNDLE, data=Path(config.ca_bundle).read_bytes()))
    found, sources = dok_package_files(DOK_PACKAGES, f"{df.CTX_OPT}/src")
    if "core" not in found:
        raise BuilderError("cannot find the dok.core sources to put into the image", hint="pip install ./core")
    files += sources
    files.append(ContextFile(path=f"{df.CTX_OPT}/healthcheck.py", data=_HEALTHCHECK_SOURCE.read_bytes()))
    staged = user_files(_as_mapping(env.files, "files"), df.CTX_FILES)
    files += staged
    files.append(ContextFile(path=f"{df.CTX_FLOW}/flow.dokflow", data=data))

    dockerfile = df.render_dockerfile(
        base_image=base_image,
        python_version=client_python(),
        runtime_pins=runtime_pins(RUNTIME_PACKAGES + result_store_packages(getattr(env, "result_location", None))),
        python_dependencies=dependencies,
        ca_bundle=bool(config.ca_bundle),
        pip_index_url=config.pip_index_url,
        dok_packages=tuple(found),
        has_files=bool(staged),
        env_vars=env_vars,
        flow_name=flow_name,
        bundle_sha256=info.sha256,
    )
    planned_env = _replace(env, image_name=image_name, registry_url=registry, flow_name=flow_name,
                           bundle_sha256=info.sha256, base_image=base_image)
    return BuildPlan(env=planned_env, image_name=image_name, registry_url=registry, explicit_tag=explicit_tag,
                     base_image=base_image, flow_name=flow_name, bundle_sha256=info.sha256, bundle=data,
                     dockerfile=dockerfile, context=BuildContext.of(dockerfile=dockerfile, files=files),
                     dok_packages=tuple(found), python_dependencies=dependencies)


def _replace(env: Any, **changes: Any) -> Any:
    fields = {f.name for f in dataclasses.fields(env)}
    return dataclasses.replace(env, **{k: v for k, v in changes.items() if k in fields})


def _spec_for_hash(env: Any) -> dict[str, Any]:
    spec = dict(env.to_dict())
    spec.pop("image_tag", None)
    spec.pop("secret_env", None)  # references resolved at run time, not part of the image's content
    return spec


def build(
    env: Any,
    flow: Any,
    *,
    push: bool = True,
    progress: ProgressCallback | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    pip_index_url: str | None = None,
    registry_username: str | None = None,
    registry_password: str | None = None,
    no_cache: bool = False,
    timeout: float = 1800.0,
) -> Any:
    """Builds (and with `push`, pushes to `env.registry_url`) the image of `flow`; returns a new environment
    with `image_name`, `image_tag`, `registry_url`, `flow_name` and `bundle_sha256` set (`.image` is the
    reference). Raises `dok.builder.exceptions.BuilderError` subclasses with a one-line message and a hint."""
    report = progress or print_progress
    started = time.monotonic()
    config = BuildConfig.resolve(ca_bundle=ca_bundle, pip_index_url=pip_index_url,
                                 registry_username=registry_username, registry_password=registry_password,
                                 no_cache=no_cache, timeout=timeout)
    plan = plan_build(env, flow, config)
    if "runner" not in plan.dok_packages:
        report(BuildEvent(kind="phase", message="warning: dok.runner is not importable here; the image can load "
                          "the flow but cannot run it on Kubernetes (install ./runner)"))
    elif "kube" not in plan.dok_packages:
        report(BuildEvent(kind="phase", message="warning: dok.kube is not importable here; the image's runner "
                          "cannot reach Kubernetes (install ./kube)"))
    client = docker.connect(timeout=config.timeout)
    base_id = docker.ensure_base_image(client, plan.base_image, report)
    tag = plan.explicit_tag or plan.context.content_hash({"base_image_id": base_id, "environment": _spec_for_hash(plan.env)})
    new_env = _replace(plan.env, image_tag=tag)
    reference = image_reference(registry_url=plan.registry_url, image_name=plan.image_name, image_tag=tag)
    will_push = bool(push and plan.registry_url)
    if push and not plan.registry_url:
        report(BuildEvent(kind="phase", message="no registry_url: the image stays local (not pushed)"))
    auth = config.credentials

    in_registry = False
    if will_push:
        in_registry = docker.registry_has(client, reference, registry=plan.registry_url or "", auth=auth)
    local_id = docker.image_id(client, reference)
    if plan.explicit_tag is None and (local_id or in_registry):
        where = "locally" if local_id else f"in {plan.registry_url}"
        report(BuildEvent(kind="skip", message=f"{reference} already exists {where} (same content hash): build skipped"))
        if will_push and not in_registry:
            _push(client, reference, plan, auth, report)
        elif will_push:
            report(BuildEvent(kind="skip", message=f"{reference} already in {plan.registry_url}: push skipped"))
        report(BuildEvent(kind="done", message=f"{reference} ({time.monotonic() - started:.2f} s)"))
        return new_env

    environment_json = json.dumps(new_env.to_dict(), indent=2, sort_keys=True).encode() + b"\n"
    context = BuildContext.of(dockerfile=plan.dockerfile, files=plan.context.files + (
        ContextFile(path=f"{df.CTX_FLOW}/environment.json", data=environment_json),))
    report(BuildEvent(kind="phase", message=f"building {reference} from {plan.base_image} "
                      f"(context {context.size / 1e6:.1f} MB{', no cache' if config.no_cache else ''})"))
    result = docker.build_image(client, context_tar=context.tar(), tag=reference, nocache=config.no_cache,
                                progress=report, base_image=plan.base_image,
                                python_dependencies=plan.python_dependencies)
    report(BuildEvent(kind="phase", message=f"built {reference}: {result.steps} steps, {result.cached_steps} from cache, "
                      f"health check passed ({time.monotonic() - started:.1f} s)"))
    if will_push:
        _push(client, reference, plan, auth, report)
    report(BuildEvent(kind="done", message=f"{reference} ({time.monotonic() - started:.1f} s)"))
    return new_env


def _push(client: Any, reference: str, plan: BuildPlan, auth: dict[str, str] | None, report: ProgressCallback) -> None:
    started = time.monotonic()
    report(BuildEvent(kind="phase", message=f"pushing {reference}"))
    digest = docker.push_image(client, reference, registry=plan.registry_url or "", auth=auth, progress=report)
    report(BuildEvent(kind="phase", message=f"pushed {reference}{' ' + digest if digest else ''} "
                      f"({time.monotonic() - started:.1f} s)"))
