"""Pushes to real registries (Debian's docker-registry on 127.0.0.1, with and without htpasswd auth):
push, skip when already in the registry, credentials, and the registry error cases."""

from __future__ import annotations

import socket

import pytest

import dok.builder
from dok.builder import exceptions as ex
from dok.builder.docker_adapter import image_id, registry_has
from dok.core import DaskOnKubernetesEnvironment, Flow, task


@task
def hello(name):
    return f"hello {name}"


def make_flow(greeting: str = "world") -> Flow:
    with Flow("registry-flow") as flow:
        hello(greeting)
    return flow


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_without_auth_then_skip(docker_client, base_image, ca_bundle, registry, images, unique_name, events):
    env = DaskOnKubernetesEnvironment(base_image=base_image, registry_url=registry.url, image_name=unique_name)
    built = dok.builder.build(env, make_flow(), push=True, ca_bundle=ca_bundle, progress=events)
    images.append(built.image)
    assert built.image.startswith(f"{registry.url}/{unique_name}:") and built.registry_url == registry.url
    assert registry_has(docker_client, built.image, registry=registry.url, auth=None)
    assert any(e.kind == "push" for e in events.events)

    # Unchanged, pushing again: nothing built, nothing pushed.
    events.events.clear()
    again = dok.builder.build(env, make_flow(), push=True, ca_bundle=ca_bundle, progress=events)
    assert again.image == built.image
    assert not any(e.kind in ("step", "push") for e in events.events)
    assert any(e.kind == "skip" and "push skipped" in e.message for e in events.events)

    # Gone locally but in the registry: the build is skipped (the registry copy is what pods pull).
    docker_client.api.remove_image(built.image, force=True, noprune=True)
    events.events.clear()
    third = dok.builder.build(env, make_flow(), push=True, ca_bundle=ca_bundle, progress=events)
    assert third.image == built.image and image_id(docker_client, built.image) is None
    assert any(e.kind == "skip" and f"in {registry.url}" in e.message for e in events.events)


def test_push_with_credentials(docker_client, base_image, ca_bundle, auth_registry, images, unique_name):
    env = DaskOnKubernetesEnvironment(base_image=base_image, registry_url=auth_registry.url, image_name=unique_name)
    built = dok.builder.build(env, make_flow("auth"), push=True, ca_bundle=ca_bundle, progress=dok.builder.silent,
                              registry_username=auth_registry.user, registry_password=auth_registry.password)
    images.append(built.image)
    auth = {"username": auth_registry.user, "password": auth_registry.password}
    assert registry_has(docker_client, built.image, registry=auth_registry.url, auth=auth)


def test_credentials_from_the_environment(docker_client, base_image, ca_bundle, auth_registry, images, unique_name,
                                          monkeypatch):
    monkeypatch.setenv("DOK_REGISTRY_USERNAME", auth_registry.user)
    monkeypatch.setenv("DOK_REGISTRY_PASSWORD", auth_registry.password)
    env = DaskOnKubernetesEnvironment(base_image=base_image, registry_url=auth_registry.url, image_name=unique_name)
    built = dok.builder.build(env, make_flow("env-creds"), push=True, ca_bundle=ca_bundle, progress=dok.builder.silent)
    images.append(built.image)


def test_wrong_credentials(docker_client, base_image, auth_registry, unique_name):
    env = DaskOnKubernetesEnvironment(base_image=base_image, registry_url=auth_registry.url, image_name=unique_name)
    with pytest.raises(ex.RegistryAuthError) as info:
        dok.builder.build(env, make_flow("wrong"), push=True, progress=dok.builder.silent,
                          registry_username=auth_registry.user, registry_password="not-the-password")
    assert auth_registry.url in info.value.message and "registry_username" in info.value.hint
    assert not docker_client.images.list(name=f"{auth_registry.url}/{unique_name}")  # nothing built


def test_missing_credentials(docker_client, base_image, auth_registry, unique_name, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # an empty docker credential store
    monkeypatch.delenv("DOK_REGISTRY_USERNAME", raising=False)
    env = DaskOnKubernetesEnvironment(base_image=base_image, registry_url=auth_registry.url, image_name=unique_name)
    with pytest.raises(ex.RegistryAuthError, match="refused the credentials"):
        dok.builder.build(env, make_flow("none"), push=True, progress=dok.builder.silent)


def test_registry_unreachable(docker_client, base_image, unique_name):
    url = f"127.0.0.1:{closed_port()}"
    env = DaskOnKubernetesEnvironment(base_image=base_image, registry_url=url, image_name=unique_name)
    with pytest.raises(ex.RegistryUnreachableError) as info:
        dok.builder.build(env, make_flow("down"), push=True, progress=dok.builder.silent)
    assert url in info.value.message and "dok_registry.py start" in info.value.hint
    assert not docker_client.images.list(name=f"{url}/{unique_name}")


def test_no_push_never_contacts_the_registry(docker_client, base_image, ca_bundle, images, unique_name):
    url = f"127.0.0.1:{closed_port()}"
    env = DaskOnKubernetesEnvironment(base_image=base_image, registry_url=url, image_name=unique_name)
    built = dok.builder.build(env, make_flow("local"), push=False, ca_bundle=ca_bundle, progress=dok.builder.silent)
    images.append(built.image)
    assert built.image.startswith(f"{url}/{unique_name}:") and image_id(docker_client, built.image)
