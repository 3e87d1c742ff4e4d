"""dok.builder: container images for flows — rendered Dockerfile, docker SDK build with a build-time health
check, content-hash tags with cache skips, push to a registry.

Public API: `build(env, flow, *, push=True, ...)`, `render_dockerfile(...)`, `BuildEvent`/`StderrProgress`
progress reporting, `BuildConfig`, and the errors in `dok.builder.exceptions`.
"""

from __future__ import annotations

from dok.builder import exceptions
from dok.builder.build import build, runtime_pins
from dok.builder.config import BuildConfig, default_base_image
from dok.builder.dockerfile import render_dockerfile
from dok.builder.exceptions import BuilderError
from dok.builder.progress import BuildEvent, StderrProgress, print_progress, silent

__all__ = [
    "BuildConfig",
    "BuildEvent",
    "BuilderError",
    "StderrProgress",
    "build",
    "default_base_image",
    "exceptions",
    "print_progress",
    "render_dockerfile",
    "runtime_pins",
    "silent",
]
