"""e2e helpers: drive the cluster tool, build Kubernetes objects, wait for them, list/delete them by label.

Used by e2e/conftest.py's fixtures and importable by any e2e test (`from e2e import helpers`).
Everything talks to the cluster with the official `kubernetes` client, through an ApiClient made from the
cluster's admin kubeconfig.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config

T = TypeVar("T")

E2E_DIR = Path(__file__).parent
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ---- the cluster tool ----------------------------------------------------------------------------------
def cluster_tool() -> Path:
    """tools/cluster/cluster.py: from Bazel runfiles (data = ["//tools/cluster:cluster"]) or the source tree."""
    for root in (E2E_DIR.parent, E2E_DIR.resolve().parent):
        candidate = root / "tools" / "cluster" / "cluster.py"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("tools/cluster/cluster.py not found next to e2e/ (add //tools/cluster:cluster to data)")


def run_cluster_tool(*args: str, capture: bool = False, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Runs `cluster <args>`; progress goes to this process's stderr (pytest shows it on failure)."""
    env = dict(os.environ, PATH=f"{os.environ.get('PATH', '')}:{SBIN_PATH}")
    return subprocess.run(
        [sys.executable, str(cluster_tool()), *args],
        stdout=subprocess.PIPE if capture else None, text=True, env=env, timeout=timeout, check=False,
    )


def cluster_is_up() -> bool:
    return run_cluster_tool("status", capture=True, timeout=60).returncode == 0


def kubeconfig_path() -> Path:
    proc = run_cluster_tool("kubeconfig", capture=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("`cluster kubeconfig` failed: is the cluster up?")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class Cluster:
    """The session's cluster: its admin kubeconfig and API clients (the `cluster` fixture)."""

    kubeconfig: Path
    started_by_session: bool
    api_client: k8s.ApiClient = field(repr=False)
    server_version: tuple[int, int] = (0, 0)

    @classmethod
    def connect(cls, kubeconfig: Path, *, started_by_session: bool) -> Cluster:
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        info = k8s.VersionApi(api).get_code()
        version = (int(info.major), int("".join(ch for ch in info.minor if ch.isdigit())))
        return cls(kubeconfig=kubeconfig, started_by_session=started_by_session, api_client=api,
                   server_version=version)

    @property
    def legacy_service_account_tokens(self) -> bool:
        """Kubernetes < 1.24 (the local cluster is 1.20): pods need the SA's token Secret to exist first."""
        return self.server_version < (1, 24)

    def service_account_ready(self, namespace: str, name: str = "default") -> bool:
        try:
            sa = self.core.read_namespaced_service_account(name, namespace)
        except k8s.ApiException as err:
            if err.status == 404:
                return False
            raise
        return bool(sa.secrets) or not self.legacy_service_account_tokens

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    @property
    def batch(self) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self.api_client)

    @property
    def rbac(self) -> k8s.RbacAuthorizationV1Api:
        return k8s.RbacAuthorizationV1Api(self.api_client)

    def load_image(self, image: str) -> None:
        """Makes a local docker image usable by pods (local: already there; kind: `kind load`)."""
        if run_cluster_tool("load-image", image, timeout=600).returncode != 0:
            raise RuntimeError(f"`cluster load-image {image}` failed")


# ---- waiting -------------------------------------------------------------------------------------------
def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.5) -> T:
    """Calls `probe` until it returns something truthy; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_pod_phase(core: k8s.CoreV1Api, namespace: str, name: str, phases: tuple[str, ...] = ("Succeeded",),
                   *, timeout: float = 90.0) -> k8s.V1Pod:
    """Waits until the pod is in one of `phases`; fails fast (with its logs) when it ends in another phase."""
    def probe() -> k8s.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        phase = pod.status.phase
        if phase in phases:
            return pod
        if phase in ("Succeeded", "Failed"):
            raise AssertionError(f"pod {namespace}/{name} ended {phase}, wanted {phases}; logs:\n"
                                 f"{pod_logs(core, namespace, name)}")
        return None
    return wait_for(f"pod {namespace}/{name} in {phases}", probe, timeout=timeout)


def wait_pod_ip(core: k8s.CoreV1Api, namespace: str, name: str, *, timeout: float = 90.0) -> str:
    wait_pod_phase(core, namespace, name, ("Running",), timeout=timeout)
    return wait_for(f"pod {namespace}/{name} ready with an IP",
                    lambda: _ready_ip(core.read_namespaced_pod(name, namespace)), timeout=timeout)


def _ready_ip(pod: k8s.V1Pod) -> str | None:
    ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
    return pod.status.pod_ip if ready else None


def wait_job_complete(batch: k8s.BatchV1Api, namespace: str, name: str, *, timeout: float = 120.0) -> k8s.V1Job:
    def probe() -> k8s.V1Job | None:
        job = batch.read_namespaced_job(name, namespace)
        for cond in job.status.conditions or []:
            if cond.type == "Failed" and cond.status == "True":
                raise AssertionError(f"job {namespace}/{name} failed: {cond.reason}: {cond.message}")
            if cond.type == "Complete" and cond.status == "True":
                return job
        return None
    return wait_for(f"job {namespace}/{name} complete", probe, timeout=timeout)


def pod_logs(core: k8s.CoreV1Api, namespace: str, name: str) -> str:
    try:
        # raw bytes: the client would otherwise parse a JSON-looking log and hand back its Python repr
        response = core.read_namespaced_pod_log(name, namespace, _preload_content=False)
        return response.data.decode("utf-8", "replace")
    except k8s.ApiException as err:
        return f"(no logs: {err.status} {err.reason})"


# ---- listing and deleting by label ---------------------------------------------------------------------
_NAMESPACED: dict[str, tuple[str, str]] = {
    # kind -> (API class attribute on Cluster, method suffix)
    "pods": ("core", "pod"),
    "services": ("core", "service"),
    "endpoints": ("core", "endpoints"),
    "configmaps": ("core", "config_map"),
    "secrets": ("core", "secret"),
    "serviceaccounts": ("core", "service_account"),
    "events": ("core", "event"),
    "jobs": ("batch", "job"),
    "roles": ("rbac", "role"),
    "rolebindings": ("rbac", "role_binding"),
}


def selector(labels: dict[str, str] | str) -> str:
    return labels if isinstance(labels, str) else ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def list_by_label(cluster: Cluster, kind: str, labels: dict[str, str] | str, *, namespace: str | None = None
                  ) -> list[Any]:
    """Objects of `kind` (e.g. "pods", "jobs", "services", "roles") matching `labels` (dict or selector
    string), in `namespace` or in all namespaces."""
    api_name, suffix = _NAMESPACED[kind]
    api = getattr(cluster, api_name)
    if namespace is None:
        result = getattr(api, f"list_{suffix}_for_all_namespaces")(label_selector=selector(labels))
    else:
        result = getattr(api, f"list_namespaced_{suffix}")(namespace, label_selector=selector(labels))
    return list(result.items)


def delete_by_label(cluster: Cluster, kind: str, labels: dict[str, str] | str, *, namespace: str,
                    grace_period_seconds: int = 0) -> int:
    """Deletes every `kind` object matching `labels` in `namespace`; returns how many it asked to delete."""
    items = list_by_label(cluster, kind, labels, namespace=namespace)
    api_name, suffix = _NAMESPACED[kind]
    delete = getattr(getattr(cluster, api_name), f"delete_namespaced_{suffix}")
    body = k8s.V1DeleteOptions(grace_period_seconds=grace_period_seconds, propagation_policy="Background")
    for item in items:
        try:
            delete(item.metadata.name, namespace, body=body)
        except k8s.ApiException as err:
            if err.status != 404:
                raise
    return len(items)


# ---- manifests (plain dicts: the client accepts them as bodies) -----------------------------------------
def pod_manifest(name: str, image: str, command: list[str], *, labels: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, ports: tuple[int, ...] | list[int] = (),
                 restart_policy: str = "Never",
                 service_account: str | None = None, grace_seconds: int = 1) -> dict[str, Any]:
    """A one-container pod for tests: local image only (`imagePullPolicy: Never`), short grace period."""
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": list(command),
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        "ports": [{"containerPort": p} for p in ports],
    }
    if ports:
        container["readinessProbe"] = {"tcpSocket": {"port": ports[0]}, "periodSeconds": 1}
    spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": grace_seconds,
        "enableServiceLinks": False,
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def job_manifest(name: str, image: str, command: list[str], *, labels: dict[str, str] | None = None,
                 completions: int = 1, parallelism: int = 1) -> dict[str, Any]:
    pod = pod_manifest(name, image, command, labels=labels)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels or {}}, "spec": pod["spec"]},
        },
    }


def service_manifest(name: str, selector_labels: dict[str, str], port: int, *, target_port: int | None = None
                     ) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector_labels, "ports": [{"port": port, "targetPort": target_port or port}]},
    }
