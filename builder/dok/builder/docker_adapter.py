"""Small adapter over the docker SDK (`docker` on PyPI; classic builder, no CLI): connect, look up images,
pull a base image, build with live progress, query and push to a registry. Every SDK error is translated
here into a `dok.builder.exceptions` error with a hint.
"""

from __future__ import annotations

import io
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

from dok.builder import dockerfile as df
from dok.builder.exceptions import (
    BaseImageError,
    BuildFailedError,
    BuilderError,
    DependencyInstallError,
    DockerUnavailableError,
    HealthCheckError,
    PushFailedError,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachableError,
)
from dok.builder.naming import split_reference
from dok.builder.progress import BuildEvent, ProgressCallback

START_DOCKERD_HINT = "start it with tools/dockerd/ensure.sh (or: sudo dockerd &), or point DOCKER_HOST at a running daemon"
_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # the classic builder colours RUN stderr
TAIL_LINES = 25


def connect(*, timeout: float = 1800.0) -> Any:
    """A `docker.DockerClient` for the daemon of DOCKER_HOST (default /var/run/docker.sock), pinged."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is in requirements.lock
        raise DockerUnavailableError("the docker SDK is not installed", hint="pip install docker") from exc
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except Exception as exc:  # DockerException, requests ConnectionError, PermissionError...
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if "Permission denied" in reason or isinstance(exc, PermissionError):
            raise DockerUnavailableError(
                f"no permission to talk to the docker daemon ({reason})",
                hint="run as root or add your user to the 'docker' group",
            ) from None
        raise DockerUnavailableError(f"the docker daemon is not running ({reason})", hint=START_DOCKERD_HINT) from None
    return client


def _explanation(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip()


def image_id(client: Any, reference: str) -> str | None:
    """The local image ID of `reference`, or None."""
    import docker.errors

    try:
        return client.api.inspect_image(reference)["Id"]
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise BuilderError(f"docker could not inspect image {reference}: {_explanation(exc)}") from None


def ensure_base_image(client: Any, base_image: str, progress: ProgressCallback) -> str:
    """The base image's ID: local if present, else pulled; `BaseImageError` if neither."""
    import docker.errors

    found = image_id(client, base_image)
    if found:
        return found
    progress(BuildEvent(kind="phase", message=f"base image {base_image} is not present locally: pulling it"))
    repository, tag = split_reference(base_image)
    try:
        for chunk in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise docker.errors.APIError(chunk["error"])
    except docker.errors.APIError as exc:
        raise BaseImageError(
            f"base image {base_image!r} is not present locally and cannot be pulled: {_explanation(exc)[:300]}",
            hint="without Docker Hub, make a local one with tools/images/make_base_image.sh and use "
            "base_image='dok-base:bookworm-py3.11' (or set DOK_BASE_IMAGE)",
        ) from None
    found = image_id(client, base_image)
    if not found:
        raise BaseImageError(f"base image {base_image!r} was pulled but cannot be found")
    return found


def translate_registry_error(registry: str, text: str, *, status: int | None = None) -> RegistryError:
    lowered = text.lower()
    if status == 401 or any(s in lowered for s in ("unauthorized", "authentication required", "no basic auth credentials",
                                                   "denied", "401")):
        return RegistryAuthError(
            f"registry {registry} refused the credentials ({text[:200]})",
            hint="check registry_username/registry_password (or DOK_REGISTRY_USERNAME/DOK_REGISTRY_PASSWORD), "
            f"or run `docker login {registry}`",
        )
    if any(s in lowered for s in ("connection refused", "no such host", "dial tcp", "i/o timeout", "timeout",
                                  "http response to https client", "x509", "tls", "connection reset", "eof")):
        return RegistryUnreachableError(
            f"registry {registry} is unreachable ({text[:200]})",
            hint="check registry_url and that the registry is running "
            "(tests/CI: python tools/registry/dok_registry.py start)",
        )
    return RegistryError(f"registry {registry} error: {text[:300]}")


def registry_has(client: Any, reference: str, *, registry: str, auth: dict[str, str] | None) -> bool:
    """Whether the registry holds `reference`; raises when the registry is unreachable or refuses us."""
    import docker.errors

    try:
        client.api.inspect_distribution(reference, auth_config=auth)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        text = _explanation(exc)
        if "manifest unknown" in text or "name unknown" in text or "not found" in text.lower():
            return False
        raise translate_registry_error(registry, text, status=exc.status_code) from None


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    image_id: str
    steps: int
    cached_steps: int


def _step_kind(instruction: str) -> str:
    if instruction.startswith("FROM"):
        return "from"
    if df.HEALTHCHECK_PATH in instruction:
        return "healthcheck"
    if instruction.startswith("RUN") and "sys.version_info" in instruction:
        return "pythoncheck"
    if instruction.startswith("RUN") and '/bin/pip", "install"' in instruction:
        return "pip"
    return "other"


def _pip_errors(tail: Iterable[str]) -> str:
    errors = [line.strip() for line in tail if line.strip().startswith("ERROR:")]
    return errors[-1] if errors else ""


def translate_build_error(*, step: tuple[int, int, str] | None, tail: list[str], error: str,
                          base_image: str, python_dependencies: tuple[str, ...]) -> BuilderError:
    detail_lines = tail[-TAIL_LINES:]
    detail = "\n".join(["--- last output of the failing step ---", *detail_lines]) if detail_lines else None
    where = f"step {step[0]}/{step[1]} ({step[2][:160]})" if step else "the build"
    kind = _step_kind(step[2]) if step else "other"
    for line in reversed(tail):
        if df.CHECK_MARKER in line:
            what, _, fix = line.split(df.CHECK_MARKER, 1)[1].partition(" | ")
            return HealthCheckError(f"health check failed: {what.strip()}", hint=fix.strip() or None, detail=None,
                                    step=where)
    if kind == "from":
        return BaseImageError(f"base image {base_image!r} is unusable: {error.strip()[:300]}",
                              hint="check base_image", detail=detail)
    if kind == "pythoncheck" and ("executable file not found" in error or "no such file" in error.lower()):
        return HealthCheckError(
            f"base image {base_image!r} has no python3",
            hint="use a Python base image, e.g. python:3.11-slim or tools/images/make_base_image.sh", step=where)
    if kind == "pip":
        joined = "\n".join(tail)
        pip_line = _pip_errors(tail)
        runtime_only = not any(dep in (step[2] if step else "") for dep in python_dependencies)
        what = "the runtime dependencies (dask, distributed, cloudpickle, kubernetes, tenacity)" if runtime_only else \
            "python_dependencies " + ", ".join(python_dependencies)
        if "CERTIFICATE_VERIFY_FAILED" in joined or "SSLError" in joined:
            hint = "pip inside the build cannot verify PyPI's certificate: pass ca_bundle= (or set DOK_BUILD_CA_BUNDLE), " \
                   "e.g. /etc/ssl/certs/ca-certificates.crt"
        elif "No matching distribution" in joined or "Could not find a version" in joined:
            hint = "check the package names and versions in python_dependencies (pip's output below)"
        elif "conflict" in joined.lower() or "ResolutionImpossible" in joined:
            hint = "a python_dependencies entry conflicts with the pinned dask/distributed/cloudpickle versions"
        else:
            hint = "see pip's output below; set pip_index_url/DOK_PIP_INDEX_URL for a private index"
        message = f"pip could not install {what}"
        if pip_line:
            message += f": {pip_line.removeprefix('ERROR:').strip()}"
        return DependencyInstallError(message, hint=hint, detail=detail, step=where)
    return BuildFailedError(f"{where} failed: {error.strip()[:300]}", detail=detail, step=where)


def build_image(client: Any, *, context_tar: bytes, tag: str, nocache: bool, progress: ProgressCallback,
                base_image: str, python_dependencies: tuple[str, ...] = ()) -> BuildResult:
    """Runs the classic builder on the in-memory context; reports steps and cache hits as they happen."""
    import docker.errors

    step: tuple[int, int, str] | None = None
    tail: deque[str] = deque(maxlen=200)
    cached = 0
    total = 0
    built_id = ""
    try:
        stream = client.api.build(fileobj=io.BytesIO(context_tar), custom_context=True, tag=tag, rm=True,
                                  forcerm=True, nocache=nocache, pull=False, decode=True)
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                error = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
                raise translate_build_error(step=step, tail=list(tail), error=error, base_image=base_image,
                                            python_dependencies=python_dependencies)
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                built_id = chunk["aux"]["ID"]
                continue
            text = chunk.get("stream")
            if text is None:
                if chunk.get("status"):
                    progress(BuildEvent(kind="output", message=str(chunk["status"])))
                continue
            for line in _ANSI_RE.sub("", text).splitlines():
                match = _STEP_RE.match(line)
                if match:
                    step = (int(match.group(1)), int(match.group(2)), match.group(3))
                    total = step[1]
                    tail.clear()
                    progress(BuildEvent(kind="step", message=_short(step[2]), step=step[0], total=step[1]))
                elif line.strip() == "---> Using cache":
                    cached += 1
                    progress(BuildEvent(kind="cached", message="cache hit", step=step[0] if step else None, total=total))
                elif line.startswith(" ---> Running in"):
                    progress(BuildEvent(kind="running", message="running", step=step[0] if step else None, total=total))
                elif line.startswith(" ---> ") or line.startswith("Removing intermediate container") \
                        or line.startswith("Successfully built") or line.startswith("Successfully tagged"):
                    continue
                elif line.strip():
                    tail.append(line.rstrip())
                    progress(BuildEvent(kind="output", message=line.rstrip(), step=step[0] if step else None, total=total))
    except docker.errors.APIError as exc:
        raise translate_build_error(step=step, tail=list(tail), error=_explanation(exc), base_image=base_image,
                                    python_dependencies=python_dependencies) from None
    except docker.errors.DockerException as exc:
        raise DockerUnavailableError(f"the docker daemon failed during the build: {exc}", hint=START_DOCKERD_HINT) from None
    if not built_id:
        built_id = image_id(client, tag) or ""
    if not built_id:
        raise BuildFailedError("docker reported no image at the end of the build", step=None)
    return BuildResult(image_id=built_id, steps=total, cached_steps=cached)


def _short(instruction: str) -> str:
    text = instruction.replace("\n", " ")
    return text if len(text) <= 110 else text[:107] + "..."


def push_image(client: Any, reference: str, *, registry: str, auth: dict[str, str] | None,
               progress: ProgressCallback) -> str | None:
    """Pushes `reference`; returns the pushed digest when the registry reports one."""
    import docker.errors

    repository, tag = split_reference(reference)
    digest = None
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in chunk or "errorDetail" in chunk:
                text = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
                error = translate_registry_error(registry, text)
                if type(error) is RegistryError:
                    raise PushFailedError(f"pushing {reference} failed: {text[:300]}", hint="retry; check the registry's log")
                raise error
            status = chunk.get("status", "")
            if "id" in chunk and status:
                progress(BuildEvent(kind="push", message=f"{chunk['id']}: {status}"))
            elif "digest:" in status:
                digest = status.split("digest:", 1)[1].split()[0]
            elif chunk.get("aux", {}).get("Digest"):
                digest = chunk["aux"]["Digest"]
    except docker.errors.APIError as exc:
        raise translate_registry_error(registry, _explanation(exc), status=exc.status_code) from None
    return digest


def remove_image(client: Any, reference: str) -> None:
    import docker.errors

    try:
        client.api.remove_image(reference, force=True)
    except docker.errors.NotFound:
        pass
