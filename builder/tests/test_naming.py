"""Image name/tag/registry validation and defaults (docker's reference grammar)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dok.builder.exceptions import InvalidImageReferenceError
from dok.builder.naming import (
    image_name_from_flow,
    image_reference,
    split_reference,
    validate_image_name,
    validate_image_tag,
    validate_registry_url,
)


@pytest.mark.parametrize("name", ["etl", "team/etl-flow", "a.b_c__d", "a--b", "x/y/z0"])
def test_valid_names(name):
    assert validate_image_name(name) == name


@pytest.mark.parametrize("name", ["", "Etl", "-etl", "etl-", "a//b", "a b", "a:b", "x" * 256, "a_-b"])
def test_invalid_names(name):
    with pytest.raises(InvalidImageReferenceError, match="image_name"):
        validate_image_name(name)


@pytest.mark.parametrize("tag", ["1", "latest", "v1.2.3-rc_1", "A" * 128])
def test_valid_tags(tag):
    assert validate_image_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a/b", "a:b", "A" * 129, "sp ace"])
def test_invalid_tags(tag):
    with pytest.raises(InvalidImageReferenceError, match="image_tag"):
        validate_image_tag(tag)


@pytest.mark.parametrize("url,expected", [("localhost:5000", "localhost:5000"), ("127.0.0.1:5000/", "127.0.0.1:5000"),
                                          ("ghcr.io/team", "ghcr.io/team"), ("registry", "registry")])
def test_registry_urls(url, expected):
    assert validate_registry_url(url) == expected


@pytest.mark.parametrize("url", ["http://localhost:5000", "local host", "", "a:b:c"])
def test_invalid_registry_urls(url):
    with pytest.raises(InvalidImageReferenceError, match="registry_url"):
        validate_registry_url(url)


def test_scheme_hint_gives_the_fix():
    with pytest.raises(InvalidImageReferenceError) as info:
        validate_registry_url("http://localhost:5000")
    assert "'localhost:5000'" in str(info.value)


def test_name_from_flow():
    assert image_name_from_flow("My ETL Flow!") == "my-etl-flow"
    assert image_name_from_flow("???") == "dok-flow"
    assert image_name_from_flow("") == "dok-flow"


@given(st.text(max_size=300))
def test_derived_names_are_always_valid(flow_name):
    assert validate_image_name(image_name_from_flow(flow_name))


def test_references():
    assert image_reference(registry_url=None, image_name="a", image_tag="1") == "a:1"
    assert image_reference(registry_url="localhost:5000", image_name="t/a", image_tag="1") == "localhost:5000/t/a:1"
    assert split_reference("localhost:5000/t/a:1") == ("localhost:5000/t/a", "1")
    assert split_reference("localhost:5000/t/a") == ("localhost:5000/t/a", "latest")
    assert split_reference("python:3.11-slim") == ("python", "3.11-slim")
