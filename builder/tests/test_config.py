"""Build settings: argument > environment variable > default, resolved once."""

from __future__ import annotations

import sys

import pytest

from dok.builder.config import BuildConfig, default_base_image
from dok.builder.exceptions import InvalidInputError


def test_defaults():
    cfg = BuildConfig.resolve(environ={})
    assert cfg.ca_bundle is None and cfg.pip_index_url is None and cfg.credentials is None
    assert cfg.default_base_image == f"python:{sys.version_info.major}.{sys.version_info.minor}-slim" == default_base_image()


def test_env_then_argument(tmp_path):
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_text("a")
    b.write_text("b")
    environ = {"DOK_BUILD_CA_BUNDLE": str(a), "DOK_PIP_INDEX_URL": "https://env/simple", "DOK_BASE_IMAGE": "base:env",
               "DOK_REGISTRY_USERNAME": "u", "DOK_REGISTRY_PASSWORD": "p"}
    cfg = BuildConfig.resolve(environ=environ)
    assert (cfg.ca_bundle, cfg.pip_index_url, cfg.default_base_image) == (str(a), "https://env/simple", "base:env")
    assert cfg.credentials == {"username": "u", "password": "p"}
    cfg = BuildConfig.resolve(ca_bundle=b, pip_index_url="https://arg/simple", registry_username="v",
                              registry_password="q", environ=environ)
    assert (cfg.ca_bundle, cfg.pip_index_url) == (str(b), "https://arg/simple")
    assert cfg.credentials == {"username": "v", "password": "q"}


def test_missing_ca_bundle_is_named(tmp_path):
    with pytest.raises(InvalidInputError, match="nothere.pem does not exist"):
        BuildConfig.resolve(ca_bundle=tmp_path / "nothere.pem", environ={})


def test_password_without_user():
    with pytest.raises(InvalidInputError, match="without a username"):
        BuildConfig.resolve(registry_password="p", environ={})
