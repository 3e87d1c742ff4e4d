"""The registry container's recipe (pure): built FROM the project's base image (no Docker Hub), unprivileged,
htpasswd auth only when asked, published on loopback only, Ryuk off."""

from __future__ import annotations

import os

import registry_container as rc


def test_the_image_is_built_from_the_base_image_and_runs_unprivileged() -> None:
    dockerfile = rc.registry_dockerfile("dok-base:bookworm-py3.11")
    assert dockerfile.splitlines()[0] == "FROM dok-base:bookworm-py3.11"
    assert "USER 65534:65534" in dockerfile and "docker.io" not in dockerfile


def test_the_tag_follows_the_recipe() -> None:
    assert rc.image_tag("a:1") != rc.image_tag("b:1")
    assert rc.image_tag("a:1") == rc.image_tag("a:1") and rc.image_tag("a:1").startswith("dok-registry:")


def test_auth_only_when_asked() -> None:
    assert rc.registry_environment(auth=False) == {}
    env = rc.registry_environment(auth=True)
    assert env["REGISTRY_AUTH"] == "htpasswd" and env["REGISTRY_AUTH_HTPASSWD_PATH"].startswith(rc.HTPASSWD_DIR)


def test_published_on_loopback_only() -> None:
    assert rc.loopback_port_binding() == {"5000/tcp": ("127.0.0.1",)}


def test_ryuk_is_off_unless_asked_for() -> None:
    assert os.environ["TESTCONTAINERS_RYUK_DISABLED"] == "true"
