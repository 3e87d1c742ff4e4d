"""The name grammars of dok, once: image references, Kubernetes names, label values, environment variable
names and Secret references, plus the fixed paths and ports every package agrees on.

Each grammar is a predicate (`is_…(text) -> bool`); each package turns a `False` into its own error type,
with the hint defined here where one exists. `split_secret_ref` parses and checks a `SECRET:KEY` reference
and raises `InvalidName` (message naming the bad part, and a hint).

Image references follow the docker/distribution `reference` grammar: `[HOST[:PORT]/]NAME[:TAG][@DIGEST]`,
a NAME is `/`-separated components of `[a-z0-9]` runs joined by `.`, `_`, `__` or dashes (at most 255
characters), a TAG is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, a registry is a host (optionally `:port`)
optionally followed by a path prefix. Kubernetes names follow RFC 1123 (labels: at most 63 characters;
subdomains: at most 253), label values are at most 63 characters of `[A-Za-z0-9._-]` starting and ending
with an alphanumeric character.
"""

from __future__ import annotations

import re
from typing import Any

from .exceptions import DokError

__all__ = [
    "BUNDLE_PATH",
    "DNS_LABEL_HINT",
    "DOK_ROOT",
    "ENV_NAME_HINT",
    "IMAGE_REFERENCE_HINT",
    "MAX_IMAGE_NAME",
    "RESERVED_ENV_PREFIX",
    "RUNNER_MODULE",
    "PROGRESS_MARK",
    "RUN_FINISHED_MARK",
    "WORKER_LOG_MARK",
    "SCHEDULER_PORT",
    "DASHBOARD_PORT",
    "InvalidName",
    "dns_slug",
    "is_dns_label",
    "is_dns_subdomain",
    "is_env_name",
    "is_image_name",
    "is_image_reference",
    "is_image_tag",
    "is_label_value",
    "is_registry",
    "is_sha256",
    "looks_secret",
    "run_object_name",
    "split_secret_ref",
]

# -- the fixed places every package agrees on ------------------------------------------------------------
DOK_ROOT = "/opt/dok"                       # reserved in images: the venv, the bundle, environment.json
BUNDLE_PATH = f"{DOK_ROOT}/flow.dokflow"    # the flow bundle in a built image (the runner's default)
SCHEDULER_PORT = 8786                       # the Dask scheduler in the job pod
DASHBOARD_PORT = 8787                       # its dashboard (bokeh), reached with `dok dashboard ID`
RUNNER_MODULE = "dok.runner"                # the job pod runs `python -m dok.runner BUNDLE_PATH`
RESERVED_ENV_PREFIX = "DOK_"                # environment variables dok sets; users may not
WORKER_LOG_MARK = "[worker "                # job-pod log lines copied from a worker: "[worker NAME] line"
PROGRESS_MARK = "[dok-progress] "          # job-pod log lines with a JSON progress record (runner → launcher)
RUN_FINISHED_MARK = " finished: "           # the runner's last line: "run ID finished: SUCCESS (exit code 0); …"

# -- grammars ------------------------------------------------------------------------------------------------
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_HOST_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_NAME_RE = re.compile(rf"^{_NAME}$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_REGISTRY_RE = re.compile(rf"^{_HOST}(?:/{_COMPONENT})*$")
_REFERENCE_RE = re.compile(rf"^(?P<name>(?:{_HOST}/)?{_NAME})(?::{_TAG})?(?:@{_DIGEST})?$")
MAX_IMAGE_NAME = 255

IMAGE_REFERENCE_HINT = ("an image reference looks like registry:5000/name:tag (or name:tag, or name@sha256:<digest>): "
                        "the name is lowercase letters, digits and '.', '_', '-' separated by '/'; the tag is "
                        "[A-Za-z0-9_.-], at most 128 characters, not starting with '.' or '-'")
DNS_LABEL_HINT = "lowercase letters, digits and '-', at most 63 characters"
ENV_NAME_HINT = "letters, digits and '_', not starting with a digit"

_SECRET_WORDS = ("TOKEN", "PASSWORD", "PASSWD", "SECRET", "KEY", "CREDENTIAL")


class InvalidName(DokError, ValueError):
    """A name or reference that does not follow its grammar (`message` names it, `hint` says the rule)."""


def _fits(pattern: re.Pattern[str], text: Any, longest: int | None = None) -> bool:
    return isinstance(text, str) and (longest is None or len(text) <= longest) and bool(pattern.match(text))


def is_dns_label(text: Any) -> bool:
    """An RFC 1123 label (namespace, pod or Job name): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63."""
    return _fits(_DNS_LABEL, text, 63)


def is_dns_subdomain(text: Any) -> bool:
    """An RFC 1123 subdomain (Secret, ServiceAccount name): dot-separated labels, at most 253 characters."""
    return _fits(_DNS_SUBDOMAIN, text, 253)


def is_label_value(text: Any, *, allow_empty: bool = False) -> bool:
    """A Kubernetes label value (a run identifier is one): at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both
    ends; the empty string only with `allow_empty` (Kubernetes accepts it, a run identifier may not be it)."""
    return allow_empty if text == "" else _fits(_LABEL_VALUE, text, 63)


def is_env_name(text: Any) -> bool:
    """An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`."""
    return _fits(_ENV_NAME, text)


def is_sha256(text: Any) -> bool:
    """64 lowercase hex characters."""
    return _fits(_SHA256, text)


def is_image_name(text: Any) -> bool:
    """A docker repository name (no registry, no tag): components joined by '/', at most 255 characters."""
    return _fits(_IMAGE_NAME_RE, text, MAX_IMAGE_NAME)


def is_image_tag(text: Any) -> bool:
    """`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`."""
    return _fits(_TAG_RE, text)


def is_registry(text: Any) -> bool:
    """`host[:port][/path]`, no scheme, no trailing slash."""
    return _fits(_REGISTRY_RE, text)


def is_image_reference(text: Any) -> bool:
    """`registry:5000/name:tag`, `name:tag`, `name@sha256:…` (what docker and the kubelet accept)."""
    match = _REFERENCE_RE.match(text) if isinstance(text, str) else None
    return match is not None and len(match.group("name")) <= MAX_IMAGE_NAME


def dns_slug(text: str) -> str:
    """`text` as DNS-label characters: lowercase, other characters -> '-', runs of '-' collapsed, ends trimmed."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", str(text).lower())).strip("-")


def run_object_name(*, flow_name: str, identifier: str, suffix: str = "", reserve: int = 0) -> str:
    """`dok-<flow slug>-<first 8 of the identifier><suffix>`: the name of a run's Job (and, with
    suffix "-worker-", the stem of its worker pods), the flow part shortened so that the name plus `reserve`
    more characters (Kubernetes' pod suffix, a worker number) is a DNS label of at most 63 characters."""
    short = dns_slug(identifier).replace("-", "")[:8] or "run"
    room = 63 - len("dok--") - len(short) - len(suffix) - reserve
    stem = dns_slug(flow_name)[:room].strip("-") or "flow"
    return f"dok-{stem}-{short}{suffix}"


def looks_secret(name: str) -> bool:
    """True for names like API_TOKEN, DB_PASSWORD, AWS_SECRET_ACCESS_KEY: values that must not be baked into
    an image (pass them as references to Kubernetes Secrets instead)."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def split_secret_ref(ref: Any) -> tuple[str, str]:
    """'SECRET:KEY' (or 'SECRET/KEY', or a (SECRET, KEY) pair) -> (secret, key): a Kubernetes Secret name and
    one of its keys. Otherwise `InvalidName(message, hint=...)`, the message naming the bad part."""
    malformed = InvalidName(f"malformed secret reference {ref!r}", hint="write SECRET:KEY, e.g. db-creds:password")
    if isinstance(ref, str):
        secret, sep, key = ref.replace("/", ":", 1).partition(":")
        if not sep or not secret or not key:
            raise malformed
    elif isinstance(ref, (tuple, list)) and len(ref) == 2 and all(isinstance(x, str) for x in ref):
        secret, key = ref
    else:
        raise malformed
    if not is_dns_subdomain(secret):
        raise InvalidName(f"invalid Secret name {secret!r}",
                          hint="lowercase letters, digits, '-' and '.', at most 253 characters")
    if not _SECRET_KEY.match(key):
        raise InvalidName(f"invalid Secret key {key!r}", hint="letters, digits, '-', '_' and '.'")
    return secret, key
