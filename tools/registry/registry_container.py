"""A throwaway OCI registry in a container, started and stopped by testcontainers (integration and e2e tests).

The image is built locally FROM the project's debootstrap base image (`dok-base:bookworm-py3.11`), with
Debian's `docker-registry` binary (distribution 2.8) copied in from this Debian host (installed by
`dok_registry.ensure_installed` when missing): no Docker Hub. testcontainers' reaper (Ryuk) is a Docker Hub
image, so it is disabled (`TESTCONTAINERS_RYUK_DISABLED=true`) and `running_registry` stops its container
in a `finally`.

The registry listens on 127.0.0.1 only (a random host port): dockerd treats 127.0.0.0/8 registries as
insecure-allowed (plain HTTP), so `docker push 127.0.0.1:PORT/x:1` works, and so does a kubelet that
shares this dockerd. With `user`/`password` it requires htpasswd (bcrypt) auth.

    with running_registry(user="dok", password="pw") as reg:
        reg.url          # '127.0.0.1:PORT', as used in image references
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # before testcontainers reads its config

BASE_IMAGE = "dok-base:bookworm-py3.11"
IMAGE_REPOSITORY = "dok-registry"
CONTAINER_PORT = 5000
HTPASSWD_DIR = "/auth"
REGISTRY_UID = 65534  # nobody: the registry needs no privilege

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:5000
"""


class RegistryContainerError(RuntimeError):
    pass


@dataclass(frozen=True, kw_only=True)
class RunningRegistry:
    """A started registry: `url` is `127.0.0.1:PORT`."""

    url: str
    port: int
    container_id: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)


def registry_dockerfile(base_image: str = BASE_IMAGE) -> str:
    """The registry image: the base image + the registry binary and its config, run as nobody."""
    return (f"FROM {base_image}\n"
            "COPY docker-registry /usr/bin/docker-registry\n"
            "COPY config.yml /etc/docker/registry/config.yml\n"
            f"RUN mkdir -p /var/lib/registry && chown {REGISTRY_UID}:{REGISTRY_UID} /var/lib/registry\n"
            f"USER {REGISTRY_UID}:{REGISTRY_UID}\n"
            f"EXPOSE {CONTAINER_PORT}\n"
            'ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]\n')


def image_tag(base_image: str = BASE_IMAGE) -> str:
    """`dok-registry:<hash of the Dockerfile and config>`: a changed recipe is a new image."""
    digest = hashlib.sha256((registry_dockerfile(base_image) + CONFIG).encode()).hexdigest()[:12]
    return f"{IMAGE_REPOSITORY}:{digest}"


def registry_environment(*, auth: bool) -> dict[str, str]:
    """The container's environment: distribution's config overrides for htpasswd auth (or none)."""
    if not auth:
        return {}
    return {"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "dok-registry",
            "REGISTRY_AUTH_HTPASSWD_PATH": f"{HTPASSWD_DIR}/htpasswd"}


def loopback_port_binding() -> dict[str, tuple[str]]:
    """Publish the registry port on 127.0.0.1 only, on a port docker picks."""
    return {f"{CONTAINER_PORT}/tcp": ("127.0.0.1",)}


def _registry_tool() -> Any:
    try:
        import dok_registry
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import dok_registry
    return dok_registry


def _docker() -> Any:
    import docker

    return docker.from_env(timeout=600)


def ensure_image(base_image: str = BASE_IMAGE) -> str:
    """Builds the registry image once (no pulls); returns its tag."""
    import docker.errors

    client = _docker()
    tag = image_tag(base_image)
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(base_image)
    except docker.errors.ImageNotFound:
        raise RegistryContainerError(f"base image {base_image} is missing: make it with "
                                     f"tools/images/make_base_image.sh {base_image}") from None
    binary = Path(_registry_tool().ensure_installed()).read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", registry_dockerfile(base_image).encode(), 0o644),
                                 ("config.yml", CONFIG.encode(), 0o644), ("docker-registry", binary, 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    try:
        client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True, pull=False)
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in exc.build_log)[-2000:]
        raise RegistryContainerError(f"building {tag} failed: {exc}\n{log}") from exc
    return tag


def _probe(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://{url}/v2/", timeout=1) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code  # 401: up, and asking for credentials
    except OSError:
        return None


def _wait_ready(url: str, container: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _probe(url) is None:
        if time.monotonic() > deadline:
            logs = container.get_wrapped_container().logs().decode(errors="replace")[-2000:]
            raise RegistryContainerError(f"the registry container did not answer on {url}:\n{logs}")
        time.sleep(0.2)


@contextmanager
def running_registry(*, user: str | None = None, password: str | None = None, base_image: str = BASE_IMAGE,
                     timeout: float = 30.0, labels: Mapping[str, str] | None = None) -> Iterator[RunningRegistry]:
    """Starts a registry container (htpasswd auth when `user` is given), yields it, removes it afterwards."""
    from testcontainers.core.container import DockerContainer

    tag = ensure_image(base_image)
    with tempfile.TemporaryDirectory(prefix="dok-registry-auth-") as auth_dir:
        container = DockerContainer(tag).with_kwargs(labels={"dok.dev/test-registry": "true", **(labels or {})})
        container.ports.update(loopback_port_binding())
        for key, value in registry_environment(auth=user is not None).items():
            container.with_env(key, value)
        if user is not None:
            htpasswd = Path(auth_dir) / "htpasswd"
            htpasswd.write_text(_registry_tool().bcrypt_htpasswd(user, password or ""))
            os.chmod(auth_dir, 0o755)
            htpasswd.chmod(0o644)
            container.with_volume_mapping(auth_dir, HTPASSWD_DIR, "ro")
        try:
            container.start()
            port = int(container.get_exposed_port(CONTAINER_PORT))
            url = f"127.0.0.1:{port}"
            _wait_ready(url, container, timeout)
            yield RunningRegistry(url=url, port=port, container_id=container.get_container_id(), user=user,
                                  password=password)
        finally:
            container.stop()
