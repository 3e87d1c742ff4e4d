"""Fixtures for the integration tests: the real dockerd, the local base image, real registries (containers
started by testcontainers, built FROM the base image; Ryuk disabled, each stopped when its fixture ends).

Unit tests never touch these. Images made by a test are removed when it ends (only those it made).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent.parent  # works from the source tree and from Bazel runfiles
BASE_IMAGE = os.environ.get("DOK_TEST_BASE_IMAGE", "dok-base:bookworm-py3.11")
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _import_registry_container():
    try:
        import registry_container
    except ImportError:
        sys.path.insert(0, str(REPO / "tools" / "registry"))
        import registry_container
    return registry_container


@pytest.fixture(scope="session")
def docker_client():
    from dok.builder.docker_adapter import connect

    return connect(timeout=600)


@pytest.fixture(scope="session")
def base_image(docker_client):
    """The Debian-made Python base image (tools/images/make_base_image.sh makes it once if missing)."""
    from dok.builder.docker_adapter import image_id

    if image_id(docker_client, BASE_IMAGE) is None:
        subprocess.run([str(REPO / "tools" / "images" / "make_base_image.sh"), BASE_IMAGE], check=True)
    return BASE_IMAGE


@pytest.fixture
def private_base(docker_client, base_image, unique_name):
    """The base image plus a unique label: a new image ID, so the docker layer cache of other builds on this
    daemon (other chains with other dok sources) cannot interfere with cache assertions."""
    import io

    tag = f"dok-test-base:{unique_name}"
    dockerfile = f"FROM {base_image}\nLABEL dok.dev/test-run={unique_name}\n"
    for _ in docker_client.api.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, decode=True):
        pass
    base_id = docker_client.api.inspect_image(tag)["Id"]
    yield tag
    _remove_descendants(docker_client, base_id)
    docker_client.api.remove_image(tag, force=True)


def _remove_descendants(docker_client, image_id: str) -> None:
    """Removes every image built on `image_id` (deepest first); nobody else builds on a private base."""
    import docker.errors

    children: dict[str, list[str]] = {}
    for image in docker_client.api.images(all=True):
        children.setdefault(image.get("ParentId") or "", []).append(image["Id"])
    order: list[str] = []
    stack = [image_id]
    while stack:
        current = stack.pop()
        for child in children.get(current, []):
            order.append(child)
            stack.append(child)
    for child in reversed(order):
        try:
            docker_client.api.remove_image(child, force=True, noprune=True)
        except docker.errors.APIError:
            pass


@pytest.fixture(scope="session")
def ca_bundle():
    return HOST_CA_BUNDLE if os.path.exists(HOST_CA_BUNDLE) else None


@pytest.fixture(scope="session")
def _layer_janitor(docker_client):
    """Untagged parent layers of the images the tests made: kept during the session (the docker layer cache
    makes later builds fast), removed at the end unless something else still uses them."""
    import docker.errors

    layers: list[str] = []
    yield layers
    for layer in reversed(layers):
        try:
            if docker_client.api.inspect_image(layer).get("RepoTags"):
                continue  # a tagged image (the base image, or someone else's): never ours to remove
            docker_client.api.remove_image(layer, force=False, noprune=True)
        except docker.errors.APIError:
            pass  # tagged, has children, or used by a container: not ours alone


@pytest.fixture
def images(docker_client, _layer_janitor):
    """A list to which a test appends the references it built; the tags are removed afterwards."""
    import docker.errors

    made: list[str] = []
    yield made
    for reference in made:
        try:
            history = [h["Id"] for h in docker_client.api.history(reference) if h["Id"].startswith("sha256:")]
            docker_client.api.remove_image(reference, force=True, noprune=True)
        except docker.errors.NotFound:
            continue
        _layer_janitor.extend(reversed(history[1:]))  # oldest first; removal goes newest first


@pytest.fixture
def unique_name():
    return f"dok-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def registry(base_image):
    """A registry container (testcontainers; tools/registry/registry_container.py), removed after the session."""
    with _import_registry_container().running_registry(base_image=base_image) as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry(base_image):
    """The same, requiring htpasswd auth (user `dok`)."""
    with _import_registry_container().running_registry(base_image=base_image, user="dok",
                                                       password="s3cret-pw") as reg:
        yield reg


@pytest.fixture
def events():
    """A progress callback that records events (and still prints them, for the test log)."""
    from dok.builder import StderrProgress

    recorded = []
    printer = StderrProgress()

    def callback(event):
        recorded.append(event)
        printer(event)

    callback.events = recorded
    return callback
