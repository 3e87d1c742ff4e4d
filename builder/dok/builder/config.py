"""Build settings resolved once: explicit argument > environment variable > default.

`BuildConfig.resolve(...)` is called at the start of `dok.builder.build`; nothing else in the package reads
the process environment. Environment variables:

- `DOK_BUILD_CA_BUNDLE`: path of a PEM CA bundle copied into the image for pip (`PIP_CERT`), for networks
  where PyPI is reached through a TLS-intercepting proxy.
- `DOK_PIP_INDEX_URL`: pip index URL used inside the build.
- `DOK_REGISTRY_USERNAME` / `DOK_REGISTRY_PASSWORD`: registry credentials (otherwise docker's credential
  store, `~/.docker/config.json`, is used).
- `DOK_BASE_IMAGE`: base image used when the environment does not name one (default `python:X.Y-slim`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping

from dok.builder.exceptions import InvalidInputError

ENV_CA_BUNDLE = "DOK_BUILD_CA_BUNDLE"
ENV_PIP_INDEX_URL = "DOK_PIP_INDEX_URL"
ENV_REGISTRY_USERNAME = "DOK_REGISTRY_USERNAME"
ENV_REGISTRY_PASSWORD = "DOK_REGISTRY_PASSWORD"
ENV_BASE_IMAGE = "DOK_BASE_IMAGE"


def default_base_image() -> str:
    """The official slim image of this client's Python minor version."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """How to build (not what): network knobs, credentials, caching."""

    ca_bundle: str | None = None
    pip_index_url: str | None = None
    registry_username: str | None = None
    registry_password: str | None = None
    default_base_image: str = ""
    no_cache: bool = False
    timeout: float = 1800.0

    @property
    def credentials(self) -> dict[str, str] | None:
        if self.registry_username is None:
            return None
        return {"username": self.registry_username, "password": self.registry_password or ""}

    @classmethod
    def resolve(
        cls,
        *,
        ca_bundle: str | os.PathLike[str] | None = None,
        pip_index_url: str | None = None,
        registry_username: str | None = None,
        registry_password: str | None = None,
        no_cache: bool = False,
        timeout: float = 1800.0,
        environ: Mapping[str, str] | None = None,
    ) -> BuildConfig:
        env = os.environ if environ is None else environ

        def pick(value: object, name: str) -> str | None:
            if value is not None and str(value) != "":
                return str(value)
            return env.get(name) or None

        bundle = pick(ca_bundle, ENV_CA_BUNDLE)
        if bundle is not None:
            bundle = os.path.abspath(os.path.expanduser(bundle))
            if not os.path.isfile(bundle):
                raise InvalidInputError(
                    f"CA bundle {bundle} does not exist",
                    hint=f"pass ca_bundle= (or set {ENV_CA_BUNDLE}) to a PEM file, "
                    "e.g. /etc/ssl/certs/ca-certificates.crt",
                )
        user = pick(registry_username, ENV_REGISTRY_USERNAME)
        password = pick(registry_password, ENV_REGISTRY_PASSWORD)
        if password is not None and user is None:
            raise InvalidInputError(
                "a registry password was given without a username",
                hint=f"pass registry_username= or set {ENV_REGISTRY_USERNAME}",
            )
        return cls(
            ca_bundle=bundle,
            pip_index_url=pick(pip_index_url, ENV_PIP_INDEX_URL),
            registry_username=user,
            registry_password=password,
            default_base_image=env.get(ENV_BASE_IMAGE) or default_base_image(),
            no_cache=no_cache,
            timeout=timeout,
        )
