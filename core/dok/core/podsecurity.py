"""The security settings every dok pod runs with, and the check that a pod spec meets Pod Security
Admission's "restricted" profile: one policy for the job pod (launcher), the worker pods (runner) and the
image (builder's `USER`), as plain Kubernetes dicts (no kubernetes import).

Non-root UID/GID 1000, no privilege escalation, every capability dropped, the runtime's default seccomp
profile and a read-only root filesystem (pods mount a writable emptyDir at /tmp for scratch).

`restricted_violations(pod_spec)` lists what in a pod spec (API JSON, camelCase) a namespace labelled
`pod-security.kubernetes.io/enforce: restricted` would refuse, following the Pod Security Standards as of
Kubernetes 1.30 (the "restricted" profile includes "baseline"):

- baseline: no host namespaces (hostNetwork/hostPID/hostIPC), no privileged containers, no Windows
  HostProcess, no hostPath volumes, no hostPort, AppArmor only RuntimeDefault/Localhost, SELinux only the
  container types and no user/role, procMount Default, seccomp never Unconfined, only the safe sysctls;
- restricted: volumes only of the allowed types (`ALLOWED_VOLUME_TYPES`), `allowPrivilegeEscalation: false`,
  `runAsNonRoot: true` (the container's, else the pod's) and never `runAsUser: 0`, seccomp RuntimeDefault or
  Localhost (the pod's, else every container's), capabilities drop `ALL` and add nothing but
  NET_BIND_SERVICE.

Every container counts: `containers`, `initContainers` and `ephemeralContainers`. Windows pods (`spec.os`)
are not modelled: dok's pods are Linux, and they are checked as such. The launcher refuses a Job whose pod
fails the check before sending it (an internal error), the tests run it on every pod dok writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "ALLOWED_VOLUME_TYPES",
    "RUN_AS_GROUP",
    "RUN_AS_USER",
    "restricted_container_security_context",
    "restricted_pod_security_context",
    "restricted_violations",
]

RUN_AS_USER = 1000
RUN_AS_GROUP = 1000

# Pod Security Standards, "restricted" (Kubernetes 1.30).
ALLOWED_VOLUME_TYPES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                  "persistentVolumeClaim", "projected", "secret"})
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
ALLOWED_SECCOMP_TYPES = ("RuntimeDefault", "Localhost")
ALLOWED_APPARMOR_TYPES = ("RuntimeDefault", "Localhost")
ALLOWED_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


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


# -- the check ---------------------------------------------------------------------------------------------
def restricted_violations(pod_spec: Mapping[str, Any], *,
                          annotations: Mapping[str, str] | None = None) -> list[str]:
    """What in `pod_spec` (a PodSpec, API JSON) Pod Security Admission "restricted" refuses, one line each,
    naming the field (`spec.containers[0].securityContext.allowPrivilegeEscalation: …`); [] = admitted.
    `annotations`: the pod's (the AppArmor annotations of older clusters)."""
    return list(_violations(pod_spec, annotations or {}))


def _violations(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> Iterator[str]:
    pod_ctx: Mapping[str, Any] = spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            yield f"spec.{key}: must not be true (host namespaces)"
    for i, volume in enumerate(spec.get("volumes") or ()):
        kinds = sorted(set(volume) - {"name"})
        for kind in kinds:
            if kind not in ALLOWED_VOLUME_TYPES:
                yield (f"spec.volumes[{i}] ({volume.get('name')!r}): {kind} volumes are not allowed (only "
                       f"{', '.join(sorted(ALLOWED_VOLUME_TYPES))})")
    for sysctl in pod_ctx.get("sysctls") or ():
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"spec.securityContext.sysctls: {sysctl.get('name')!r} is not a safe sysctl"
    for key, value in annotations.items():
        if key.startswith(_APPARMOR_ANNOTATION) and value != "runtime/default" and not value.startswith("localhost/"):
            yield f"metadata.annotations[{key!r}]: {value!r} (AppArmor must be runtime/default or localhost/*)"
    yield from _common_context("spec.securityContext", pod_ctx)
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    for where, container in _containers(spec):
        ctx: Mapping[str, Any] = container.get("securityContext") or {}
        at = f"{where}.securityContext"
        yield from _common_context(at, ctx)
        if ctx.get("privileged") is True:
            yield f"{at}.privileged: must not be true"
        if ctx.get("procMount", "Default") != "Default":
            yield f"{at}.procMount: {ctx.get('procMount')!r} (must be Default)"
        if ctx.get("allowPrivilegeEscalation") is not False:
            yield f"{at}.allowPrivilegeEscalation: must be false"
        non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
        if non_root is None:
            yield f"{at}.runAsNonRoot: must be true (here or in spec.securityContext)"
        seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ALLOWED_SECCOMP_TYPES and seccomp != "Unconfined":  # Unconfined: reported above
            yield (f"{at}.seccompProfile.type: {seccomp!r} (must be RuntimeDefault or Localhost, here or in "
                   "spec.securityContext)")
        capabilities: Mapping[str, Any] = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or ()):
            yield f"{at}.capabilities.drop: must contain ALL"
        added = sorted(set(capabilities.get("add") or ()) - ALLOWED_ADDED_CAPABILITIES)
        if added:
            yield f"{at}.capabilities.add: {', '.join(added)} not allowed (only NET_BIND_SERVICE)"
        for j, port in enumerate(container.get("ports") or ()):
            if port.get("hostPort"):
                yield f"{where}.ports[{j}].hostPort: must be unset or 0"


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in _CONTAINER_LISTS:
        for i, container in enumerate(spec.get(kind) or ()):
            yield f"spec.{kind}[{i}]", container


def _common_context(at: str, ctx: Mapping[str, Any]) -> Iterator[str]:
    """Rules that apply alike to the pod's and each container's securityContext."""
    if ctx.get("runAsNonRoot") is False:
        yield f"{at}.runAsNonRoot: must not be false"
    if ctx.get("runAsUser") == 0:
        yield f"{at}.runAsUser: must not be 0 (root)"
    if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
        yield f"{at}.seccompProfile.type: must not be Unconfined"
    if (ctx.get("windowsOptions") or {}).get("hostProcess") is True:
        yield f"{at}.windowsOptions.hostProcess: must not be true"
    apparmor = (ctx.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in ALLOWED_APPARMOR_TYPES:
        yield f"{at}.appArmorProfile.type: {apparmor!r} (must be RuntimeDefault or Localhost)"
    selinux: Mapping[str, Any] = ctx.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in ALLOWED_SELINUX_TYPES:
        yield f"{at}.seLinuxOptions.type: {selinux.get('type')!r} is not a container type"
    for key in ("user", "role"):
        if selinux.get(key):
            yield f"{at}.seLinuxOptions.{key}: must be unset"
