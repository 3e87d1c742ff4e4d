"""The one module of name grammars: image references, Kubernetes names, label values, env names, Secret refs."""

from __future__ import annotations

import pytest

from dok.core import names


@pytest.mark.parametrize("ref", ["img:1", "localhost:5000/fanout:abc", "registry:5000/team/name:v1.2_3-x",
                                 "python:3.11-slim", "docker.io/library/python", "name:" + "t" * 128,
                                 "name@sha256:" + "0" * 64, "127.0.0.1:5000/a__b-c.d:T", "[fd00::1]:5000/x:y"])
def test_image_references(ref: str) -> None:
    assert names.is_image_reference(ref)


@pytest.mark.parametrize("ref", ["", "Bad Image:x", "registry:5000/Name:tag", "name:bad tag", "name:.dot",
                                 "name:" + "t" * 129, "registry:5000/", "name@sha256:xyz", "a" * 256, None, 3])
def test_not_image_references(ref: object) -> None:
    assert not names.is_image_reference(ref)


def test_image_name_tag_registry() -> None:
    assert names.is_image_name("team/etl-flow") and not names.is_image_name("Etl") and not names.is_image_name("")
    assert names.is_image_tag("v1.2") and not names.is_image_tag(".x") and not names.is_image_tag("A" * 129)
    assert names.is_registry("localhost:5000") and names.is_registry("ghcr.io/team")
    assert not names.is_registry("http://x") and not names.is_registry("a:b:c")


def test_kubernetes_names() -> None:
    assert names.is_dns_label("team-a") and not names.is_dns_label("Team") and not names.is_dns_label("a" * 64)
    assert not names.is_dns_label("-a") and not names.is_dns_label("a.b")
    assert names.is_dns_subdomain("db-creds.v1") and not names.is_dns_subdomain("a..b")
    assert not names.is_dns_subdomain("x" * 254)


def test_label_values() -> None:
    assert names.is_label_value("0f8fad5b-d9cb-469f-a165-70867728950e") and names.is_label_value("A.b_c-1")
    assert not names.is_label_value("") and names.is_label_value("", allow_empty=True)
    assert not names.is_label_value("x" * 64) and not names.is_label_value("a b")


def test_env_names() -> None:
    assert names.is_env_name("_A1") and not names.is_env_name("1A") and not names.is_env_name("A-B")


def test_split_secret_ref() -> None:
    assert names.split_secret_ref("db-creds:password") == ("db-creds", "password")
    assert names.split_secret_ref("db-creds/pass.word") == ("db-creds", "pass.word")
    assert names.split_secret_ref(("s", "k")) == ("s", "k")
    with pytest.raises(names.InvalidName, match="malformed secret reference") as info:
        names.split_secret_ref("nokey")
    assert info.value.hint and "SECRET:KEY" in info.value.hint
    with pytest.raises(names.InvalidName, match="invalid Secret name"):
        names.split_secret_ref("Upper:key")
    with pytest.raises(names.InvalidName, match="invalid Secret key"):
        names.split_secret_ref("s:bad key")


def test_fixed_places() -> None:
    assert names.BUNDLE_PATH == "/opt/dok/flow.dokflow" and names.SCHEDULER_PORT == 8786
    assert names.RUNNER_MODULE == "dok.runner"
