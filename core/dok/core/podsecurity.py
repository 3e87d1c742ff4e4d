"""The security settings every dok pod runs with: one policy for the job pod (launcher), the worker pods
(runner) and the image (builder's `USER`), as plain Kubernetes dicts (no kubernetes import).

Non-root UID/GID 1000, no privilege escalation, every capability dropped, the runtime's default seccomp
profile and a read-only root filesystem (pods mount a writable emptyDir at /tmp for scratch).
"""

from __future__ import annotations

from typing import Any

RUN_AS_USER = 1000
RUN_AS_GROUP = 1000


def restricted_container_security_context() -> dict[str, Any]:
    """A container's securityContext (a fresh dict each call)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security_context() -> dict[str, Any]:
    """A pod's securityContext (a fresh dict each call)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "fsGroup": RUN_AS_GROUP,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
