"""`--python-dependency`, `--file` and `--env-var` on `dok run` / `dok build`: image inputs added to the flow's
environment from the command line (the `dok_flow` Bazel macro passes a flow's py_library sources and pip pins
this way). Each is additive: the environment's own `python_dependencies`, `files` and `env_vars` stay, and a
command-line entry with the same key (file source, variable name) replaces the environment's.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from .exceptions import UsageError
from .flowfile import resolve_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--python-dependency", action="append", default=[], metavar="REQUIREMENT",
                        help="pip requirement added to the image (python_dependencies); repeatable")
    parser.add_argument("--file", action="append", default=[], metavar="SRC=DEST",
                        help="local file or directory copied into the image at the absolute path DEST (files); "
                             "repeatable")
    parser.add_argument("--env-var", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable baked into the image (env_vars, not for secrets); repeatable")


def _pairs(items: Sequence[str], option: str, form: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"malformed {option} {item!r}", hint=f"write {option} {form}")
        out[key] = value
    return out


def apply(env: Any, args: argparse.Namespace) -> Any:
    """`env` with the command line's image inputs added (unchanged when there are none)."""
    deps = list(getattr(args, "python_dependency", None) or [])
    files = _pairs(getattr(args, "file", None) or [], "--file", "SRC=DEST (DEST absolute in the image)")
    env_vars = _pairs(getattr(args, "env_var", None) or [], "--env-var", "NAME=VALUE")
    if not (deps or files or env_vars):
        return env
    # Sources as absolute paths: relative ones are taken from where dok was run, as for every other path.
    files = {str(resolve_path(src)): dest for src, dest in files.items()}
    merged_deps = list(env.python_dependencies)
    merged_deps += [d for d in deps if d not in merged_deps]
    try:
        return dataclasses.replace(env, python_dependencies=tuple(merged_deps),
                                   files={**dict(env.files), **files}, env_vars={**dict(env.env_vars), **env_vars})
    except (ValueError, TypeError) as exc:  # core's EnvironmentConfigError names the bad entry
        raise UsageError(str(exc).splitlines()[0], hint="fix the --python-dependency/--file/--env-var it names") from exc
