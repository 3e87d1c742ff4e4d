"""Image references: validate names, tags and registry URLs the way docker does; derive defaults.

The grammar (docker/distribution `reference`) is core's (`dok.core.names`); this module turns a name that
does not follow it into the builder's `InvalidImageReferenceError` with a hint.
"""

from __future__ import annotations

import re

from dok.builder.exceptions import InvalidImageReferenceError
from dok.core.names import MAX_IMAGE_NAME, is_image_name, is_image_tag, is_registry

MAX_NAME_LENGTH = MAX_IMAGE_NAME
DEFAULT_IMAGE_NAME = "dok-flow"


def validate_image_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidImageReferenceError("image_name is empty", hint="give a name like 'etl-flow' or leave it unset")
    if not is_image_name(name):
        raise InvalidImageReferenceError(
            f"invalid image_name {name!r}",
            hint="use lowercase letters, digits and single '.', '_', '-' or '/' separators "
            "(e.g. 'team/etl-flow'), at most 255 characters",
        )
    return name


def validate_image_tag(tag: str) -> str:
    if not is_image_tag(tag):
        raise InvalidImageReferenceError(
            f"invalid image_tag {tag!r}",
            hint="a tag is 1-128 of letters, digits, '_', '.', '-' and cannot start with '.' or '-'",
        )
    return tag


def validate_registry_url(url: str) -> str:
    """Returns the registry prefix as docker wants it: `host[:port][/path]`, no scheme, no trailing slash."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidImageReferenceError("registry_url is empty", hint="use e.g. 'localhost:5000' or leave it unset")
    text = url.strip().rstrip("/")
    if "://" in text:
        raise InvalidImageReferenceError(
            f"invalid registry_url {url!r}: docker registry addresses have no scheme",
            hint=f"use {text.split('://', 1)[1]!r}",
        )
    if not is_registry(text):
        raise InvalidImageReferenceError(
            f"invalid registry_url {url!r}", hint="use 'host[:port][/prefix]', e.g. 'localhost:5000' or 'ghcr.io/team'"
        )
    return text


def image_name_from_flow(flow_name: str) -> str:
    """A valid docker repository name derived from a flow name ('My ETL Flow!' -> 'my-etl-flow')."""
    slug = re.sub(r"[^a-z0-9]+", "-", (flow_name or "").lower()).strip("-")
    slug = slug[:128].strip("-")
    return slug or DEFAULT_IMAGE_NAME


def image_reference(*, registry_url: str | None, image_name: str, image_tag: str) -> str:
    repository = f"{registry_url}/{image_name}" if registry_url else image_name
    return f"{repository}:{image_tag}"


def split_reference(reference: str) -> tuple[str, str]:
    """'host:5000/a/b:tag' -> ('host:5000/a/b', 'tag'); no tag -> 'latest'."""
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = reference.rsplit(":", 1)
        return repository, tag
    return reference, "latest"
