"""`cluster operator install|uninstall|status`: the dask-kubernetes operator in the local cluster.

The CRDs are the ones the pinned `dask-kubernetes` package ships (its helm chart's `crds/` directory; they
apply unchanged on Kubernetes 1.20, server-side because they are too large for the last-applied annotation).
The controller runs as a Deployment in its own namespace from an image built here FROM dok's base image with
the pinned packages installed by pip (no image pulls). Fixes this cluster needs, each with its reason:

- kopf looks the process's UID up in the passwd database at start-up: the image adds a user with UID 1000 and
  the pod runs as that user (the upstream image does the same with `useradd`; a bare UID fails).
- kopf's peering objects (`ClusterKopfPeering`) are not installed: the controller runs `--standalone`.
- The upstream image calls `kopf` from /usr/local/bin; here it is the venv's, so the entrypoint names it.
- kr8s fails on Kubernetes 1.20 when it lists a Service's ready pods (`Unexpected type <class 'list'>`); only
  the controller's autoscaler/retire/idle paths call that, and dok's backend uses none of them (docs/operator.md).

Manifests and the Dockerfile are pure functions (unit-tested); `install`/`uninstall`/`status` drive docker
and kubectl.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dok_cluster.errors import ClusterError

NAMESPACE = "dask-operator"
NAME = "dask-kubernetes-operator"
BASE_IMAGE = "dok-base:bookworm-py3.11"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# the packages the controller imports, at the versions pinned in requirements.lock (read from the venv)
PACKAGES = ("dask-kubernetes", "dask", "distributed", "kopf", "kr8s")
CRD_NAMES = ("daskclusters.kubernetes.dask.org", "daskworkergroups.kubernetes.dask.org",
             "daskjobs.kubernetes.dask.org", "daskautoscalers.kubernetes.dask.org")
UID = 1000


@dataclass(frozen=True, kw_only=True)
class Kubectl:
    """How to call kubectl against the cluster (binary + kubeconfig)."""

    binary: str
    kubeconfig: str

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, f"--kubeconfig={self.kubeconfig}", *args], input=stdin, text=True,
                              capture_output=True, check=False)
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip()[:800]}")
        return proc


def pinned_versions() -> dict[str, str]:
    """The installed (= locked) versions of the controller's packages."""
    return {p: importlib.metadata.version(p) for p in PACKAGES}


def image_tag(versions: dict[str, str]) -> str:
    return f"dok-dask-operator:{versions['dask-kubernetes']}"


def dockerfile(*, base: str, versions: dict[str, str], uid: int = UID) -> str:
    """The controller image: a venv with the pinned packages, a passwd entry for `uid` (kopf needs one)."""
    pins = " ".join(f"{p}=={v}" for p, v in sorted(versions.items()))
    return "\n".join([
        f"FROM {base}",
        "COPY ca-certificates.crt /etc/dok-build-ca.crt",
        "ENV PIP_CERT=/etc/dok-build-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1",
        f"RUN python3 -m venv /opt/operator && /opt/operator/bin/pip install {pins}",
        f"RUN echo 'dask:x:{uid}:{uid}:dask:/tmp:/bin/sh' >> /etc/passwd && echo 'dask:x:{uid}:' >> /etc/group",
        f"USER {uid}",
        "ENV HOME=/tmp PATH=/opt/operator/bin:/usr/bin:/bin",
        'ENTRYPOINT ["/opt/operator/bin/kopf", "run", "--standalone", "--all-namespaces", '
        '"--liveness=http://0.0.0.0:8080/healthz", "-m", "dask_kubernetes.operator.controller"]',
        "",
    ])


def crd_files() -> list[Path]:
    """The CRDs shipped in the pinned dask-kubernetes package (its helm chart's crds/)."""
    spec = importlib.util.find_spec("dask_kubernetes")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("the dask-kubernetes package is not installed", hint="use the project's venv")
    root = Path(next(iter(spec.submodule_search_locations)))
    files = sorted((root / "operator/deployment/helm/dask-kubernetes-operator/crds").glob("*.yaml"))
    if len(files) != len(CRD_NAMES):
        raise ClusterError(f"expected {len(CRD_NAMES)} CRD files in {root}, found {len(files)}")
    return files


def controller_manifests(*, image: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, ClusterRole(+Binding) and the controller Deployment (RBAC as upstream's chart)."""
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "dok-cluster"}
    rules = [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["kubernetes.dask.org"],
         "resources": ["daskclusters", "daskworkergroups", "daskjobs", "daskjobs/status", "daskautoscalers",
                       "daskworkergroups/scale", "daskclusters/status", "daskworkergroups/status",
                       "daskautoscalers/status"],
         "verbs": ["get", "list", "watch", "patch", "create", "delete"]},
        {"apiGroups": [""], "resources": ["pods", "pods/status", "services", "services/status"], "verbs": ["*"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/status"], "verbs": ["*"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["*"]},
    ]
    pod_security = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                    "seccompProfile": {"type": "RuntimeDefault"}}
    container_security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                          "readOnlyRootFilesystem": True}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": NAME, "namespace": namespace, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": NAME, "labels": labels}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": NAME, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                  "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": NAME, "securityContext": pod_security,
                                        "terminationGracePeriodSeconds": 5,
                                        "containers": [{
                                            "name": "controller", "image": image, "imagePullPolicy": "Never",
                                            "securityContext": container_security,
                                            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                                          "limits": {"memory": "512Mi"}},
                                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                                              "initialDelaySeconds": 30, "timeoutSeconds": 5}}],
                                        "volumes": [{"name": "tmp", "emptyDir": {}}]}}}},
    ]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _docker_image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0


def build_image(versions: dict[str, str]) -> str:
    image = image_tag(versions)
    if _docker_image_exists(image):
        _say(f"image {image}: present")
        return image
    if not _docker_image_exists(BASE_IMAGE):
        raise ClusterError(f"base image {BASE_IMAGE} is missing", hint="build it: tools/bazel run //tools/images:base")
    with tempfile.TemporaryDirectory(prefix="dok-operator-image-") as ctx:
        Path(ctx, "Dockerfile").write_text(dockerfile(base=BASE_IMAGE, versions=versions))
        shutil.copy(CA_BUNDLE, Path(ctx, "ca-certificates.crt"))
        _say(f"building {image} from {BASE_IMAGE} (pip, pinned versions) ...")
        proc = subprocess.run(["docker", "build", "-q", "-t", image, ctx], capture_output=True, text=True,
                              check=False, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"})
        if proc.returncode != 0:
            raise ClusterError(f"docker build of {image} failed: {proc.stderr.strip()[-1500:]}")
    return image


def install(kubectl: Kubectl) -> None:
    """Idempotent: CRDs (server-side apply), the controller image, RBAC and Deployment; waits until Ready."""
    versions = pinned_versions()
    for path in crd_files():
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(path))
    _say("CRDs applied: " + ", ".join(CRD_NAMES))
    image = build_image(versions)
    items = {"apiVersion": "v1", "kind": "List", "items": controller_manifests(image=image)}
    kubectl.run("apply", "-f", "-", stdin=json.dumps(items))
    kubectl.run("-n", NAMESPACE, "rollout", "status", f"deployment/{NAME}", "--timeout=180s")
    _say(f"operator {NAME} running in namespace {NAMESPACE} ({image})")


def uninstall(kubectl: Kubectl) -> None:
    """Controller, RBAC and namespace, then the CRDs (which deletes every Dask custom resource left)."""
    for kind, name in (("clusterrolebinding", NAME), ("clusterrole", NAME), ("namespace", NAMESPACE)):
        kubectl.run("delete", kind, name, "--ignore-not-found", "--wait=false")
    kubectl.run("delete", "crd", *CRD_NAMES, "--ignore-not-found")
    _say("operator uninstalled")


def status(kubectl: Kubectl) -> bool:
    """Prints whether the CRDs exist and the controller runs; True when both."""
    proc = kubectl.run("get", "crd", "-o", "name", check=False)
    present = {line.split("/", 1)[-1] for line in proc.stdout.split()}
    missing = [c for c in CRD_NAMES if c not in present]
    print(f"{'operator CRDs':<24} {'installed' if not missing else 'missing: ' + ', '.join(missing)}")
    proc = kubectl.run("-n", NAMESPACE, "get", "deployment", NAME, "-o", "json", check=False)
    ready = 0
    if proc.returncode == 0:
        ready = (json.loads(proc.stdout).get("status") or {}).get("readyReplicas") or 0
    print(f"{'operator controller':<24} {'running' if ready else 'not running'} ({NAMESPACE}/{NAME})")
    return not missing and bool(ready)
