"""`restricted_violations`: Pod Security Admission "restricted" as a pure check, rule by rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dok.core.podsecurity import (restricted_container_security_context, restricted_pod_security_context,
                                  restricted_violations)


def good_pod() -> dict[str, Any]:
    return {
        "securityContext": restricted_pod_security_context(),
        "containers": [{"name": "c", "image": "i", "securityContext": restricted_container_security_context(),
                        "ports": [{"containerPort": 8786}]}],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x"}},
                    {"name": "p", "projected": {"sources": []}}],
    }


def test_dok_policy_is_admitted() -> None:
    assert restricted_violations(good_pod()) == []


def test_pod_level_settings_cover_containers_that_leave_them_unset() -> None:
    pod = good_pod()
    ctx = pod["containers"][0]["securityContext"]
    del ctx["runAsNonRoot"], ctx["seccompProfile"]
    assert restricted_violations(pod) == []
    del pod["securityContext"]["seccompProfile"]
    assert restricted_violations(pod) == [
        "spec.containers[0].securityContext.seccompProfile.type: None (must be RuntimeDefault or Localhost, "
        "here or in spec.securityContext)"]


def _set(pod: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path ('containers.0.securityContext.privileged'); value None deletes it."""
    *parents, last = path.split(".")
    node: Any = pod
    for key in parents:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


BREAKS = [
    ("hostNetwork", True, "spec.hostNetwork: must not be true"),
    ("hostPID", True, "spec.hostPID"),
    ("hostIPC", True, "spec.hostIPC"),
    ("volumes.0", {"name": "h", "hostPath": {"path": "/"}}, "hostPath volumes are not allowed"),
    ("volumes.0", {"name": "n", "nfs": {"server": "s", "path": "/"}}, "nfs volumes are not allowed"),
    ("containers.0.securityContext.privileged", True, "privileged: must not be true"),
    ("containers.0.securityContext.allowPrivilegeEscalation", True, "allowPrivilegeEscalation: must be false"),
    ("containers.0.securityContext.allowPrivilegeEscalation", None, "allowPrivilegeEscalation: must be false"),
    ("containers.0.securityContext.runAsNonRoot", False, "containers[0].securityContext.runAsNonRoot: must not"),
    ("securityContext.runAsNonRoot", False, "spec.securityContext.runAsNonRoot: must not be false"),
    ("containers.0.securityContext.runAsUser", 0, "runAsUser: must not be 0"),
    ("securityContext.runAsUser", 0, "spec.securityContext.runAsUser: must not be 0"),
    ("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}, "must not be Unconfined"),
    ("securityContext.seccompProfile", {"type": "Unconfined"}, "spec.securityContext.seccompProfile.type"),
    ("containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}, "capabilities.drop: must contain ALL"),
    ("containers.0.securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]}, "SYS_ADMIN not allowed"),
    ("containers.0.securityContext.procMount", "Unmasked", "procMount"),
    ("containers.0.securityContext.seLinuxOptions", {"type": "spc_t"}, "seLinuxOptions.type"),
    ("containers.0.securityContext.seLinuxOptions", {"user": "root"}, "seLinuxOptions.user: must be unset"),
    ("containers.0.securityContext.windowsOptions", {"hostProcess": True}, "hostProcess"),
    ("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}, "appArmorProfile.type"),
    ("containers.0.ports.0.hostPort", 8786, "hostPort: must be unset or 0"),
    ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}], "not a safe sysctl"),
    ("initContainers", [{"name": "init", "image": "i"}], "spec.initContainers[0].securityContext"),
    ("ephemeralContainers", [{"name": "dbg", "image": "i"}], "spec.ephemeralContainers[0].securityContext"),
]


@pytest.mark.parametrize("path,value,expected", BREAKS, ids=[f"{b[0]}={b[1]!r}" for b in BREAKS])
def test_each_rule_refuses_its_break(path: str, value: Any, expected: str) -> None:
    pod = good_pod()
    _set(pod, path, copy.deepcopy(value))
    found = restricted_violations(pod)
    assert any(expected in v for v in found), found


def test_allowed_variants_pass() -> None:
    pod = good_pod()
    pod["containers"][0]["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    pod["containers"][0]["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "p.json"}
    pod["containers"][0]["ports"][0]["hostPort"] = 0
    pod["securityContext"]["sysctls"] = [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]
    pod["volumes"].append({"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}})
    assert restricted_violations(pod, annotations={
        "container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}) == []


def test_apparmor_annotation() -> None:
    found = restricted_violations(good_pod(), annotations={
        "container.apparmor.security.beta.kubernetes.io/c": "unconfined"})
    assert found and "AppArmor" in found[0]


def test_unset_security_context_lists_every_missing_rule() -> None:
    found = restricted_violations({"containers": [{"name": "c", "image": "i"}]})
    assert [v.split(":")[0] for v in found] == [
        "spec.containers[0].securityContext.allowPrivilegeEscalation",
        "spec.containers[0].securityContext.runAsNonRoot",
        "spec.containers[0].securityContext.seccompProfile.type",
        "spec.containers[0].securityContext.capabilities.drop",
    ]
