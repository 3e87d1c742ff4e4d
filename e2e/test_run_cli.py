"""e2e: the `dok` CLI against the real cluster — exit codes and output.

- a successful flow exits 0 and prints its result;
- a failing task exits 1 and prints the task's error;
- a missing image exits 3 with the pull error within a bounded time;
- `--detach` prints the identifier; `dok status` / `dok logs` / `dok cleanup` work with it;
- `dok status`/`logs`/`cancel` on an unknown identifier, or a namespace that does not exist, exit 2;
- security: the running job pod's spec is restricted (non-root, no escalation, no capabilities,
  RuntimeDefault seccomp, read-only root); the runner's account may only do what it needs in its
  namespace (SubjectAccessReview); a caller who may not create Jobs gets exit 2 naming the permission.

The CLI runs as a subprocess (`python -m dok.launcher`, the same code as `tools/dok`) with the cluster's
kubeconfig; each test gets a fresh namespace. Images come from dok.builder (base image $DOK_BASE_IMAGE,
default dok-base:bookworm-py3.11).
"""

from __future__ import annotations

import re
import time

import pytest

from e2e import helpers
from e2e.reliability_flows import IDENT_LABEL, dok, flow_file, identifier_of, remaining, wait_gone

OK_FLOW = '''
from dok.core import Flow, Parameter, task

@task
def numbers(n):
    return list(range(int(n)))

@task
def inc(x):
    return x + 1

@task
def total(xs):
    return sum(xs)

with Flow("e2e-ok") as flow:
    n = Parameter("n", default=4)
    total(inc.map(numbers(n)))
'''

FAILING_FLOW = '''
from dok.core import Flow, task

@task
def start():
    return 21

@task
def explode(x):
    raise ValueError(f"boom {x * 2}")

with Flow("e2e-failing") as flow:
    explode(start())
'''


# ---- helpers (kept in this file: Bazel runs each e2e file as its own target) -----------------------------
# ---- tests -------------------------------------------------------------------------------------------------
def test_success_exits_0_and_prints_result(cluster, namespace, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, "--rm", "--param", "n=5",
               "--max-workers", "2")
    assert proc.returncode == 0
    assert "Success" in proc.stdout
    assert "'total': 15" in proc.stdout  # 1+2+3+4+5
    assert "Traceback" not in proc.stderr
    wait_gone(cluster, namespace, identifier_of(proc.stderr))


def test_failing_task_exits_1_and_prints_error(cluster, namespace, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, FAILING_FLOW), "-n", namespace, "--rm")
    assert proc.returncode == 1
    assert "explode" in proc.stdout
    assert "ValueError: boom 42" in proc.stdout
    assert "Failed" in proc.stdout
    wait_gone(cluster, namespace, identifier_of(proc.stderr))


def test_missing_image_exits_3_with_pull_error(cluster, namespace, tmp_path):
    # A registry address on this machine where nothing listens: the pull fails at once, no traffic leaves.
    image = "127.0.0.1:1/dok-e2e-missing:nope"
    start = time.monotonic()
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, "--rm", "--image", image, timeout=180)
    elapsed = time.monotonic() - start
    assert proc.returncode == 3
    assert elapsed < 120, f"took {elapsed:.0f} s"
    assert image in proc.stderr
    assert re.search(r"ImagePullBackOff|ErrImagePull", proc.stderr)
    assert "Traceback" not in proc.stderr
    wait_gone(cluster, namespace, identifier_of(proc.stderr))


def test_detach_then_status_logs_cleanup(cluster, namespace, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, "--detach")
    assert proc.returncode == 0
    identifier = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", identifier)

    def finished():
        st = dok(cluster, "status", identifier, "-n", namespace, timeout=60)
        assert st.returncode == 0
        return st if "Succeeded" in st.stdout else None

    status = helpers.wait_for("the detached run to finish", finished, timeout=180, interval=2)
    assert f"run:        {identifier}" in status.stdout
    assert "'total': 10" in status.stdout

    logs = dok(cluster, "logs", identifier, "-n", namespace, timeout=60)
    assert logs.returncode == 0
    assert identifier in logs.stdout  # the runner names its run in its log

    lst = dok(cluster, "list", "-n", namespace, timeout=60)
    assert identifier in lst.stdout

    cleanup = dok(cluster, "cleanup", identifier, "-n", namespace, timeout=120)
    assert cleanup.returncode == 0
    assert remaining(cluster, namespace, identifier) == []
    gone = dok(cluster, "status", identifier, "-n", namespace, timeout=60)
    assert gone.returncode == 2


@pytest.mark.parametrize("command", ["status", "logs", "cancel", "cleanup"])
def test_unknown_identifier_exits_2(cluster, namespace, command):
    proc = dok(cluster, command, "00000000-0000-0000-0000-000000000000", "-n", namespace, timeout=60)
    assert proc.returncode == 2
    assert "no run with identifier" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_namespace_that_does_not_exist_exits_2(cluster, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", "dok-e2e-no-such-namespace", timeout=120)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


# ---- security: the job pod's spec, the runner's permissions, a caller without permissions --------------
SLOW_FLOW = '''
import time
from dok.core import Flow, task

@task
def slow(i):
    time.sleep(30)
    return i

with Flow("e2e-slow") as flow:
    slow.map([1, 2])
'''


def test_job_pod_runs_restricted(cluster, namespace, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, SLOW_FLOW), "-n", namespace, "--detach")
    assert proc.returncode == 0
    identifier = proc.stdout.strip().splitlines()[-1]
    try:
        def running():
            pods = helpers.list_by_label(cluster, "pods", {IDENT_LABEL: identifier,
                                                           "app.kubernetes.io/component": "job"},
                                         namespace=namespace)
            return pods[0] if pods and pods[0].status.phase == "Running" else None

        pod = helpers.wait_for("the job pod running", running, timeout=180)
        spec = pod.spec
        assert spec.security_context.run_as_non_root is True
        assert spec.security_context.seccomp_profile.type == "RuntimeDefault"
        (c,) = spec.containers
        sc = c.security_context
        assert sc.run_as_non_root is True and sc.run_as_user == 1000
        assert sc.allow_privilege_escalation is False
        assert sc.capabilities.drop == ["ALL"]
        assert sc.read_only_root_filesystem is True
        assert sc.seccomp_profile.type == "RuntimeDefault"
        assert spec.service_account_name == "dok-runner"
        assert spec.restart_policy == "Never"
        labels = pod.metadata.labels
        assert labels["app.kubernetes.io/managed-by"] == "dok" and labels["dok.dev/flow"] == "e2e-slow"
    finally:
        assert dok(cluster, "cancel", identifier, "-n", namespace, timeout=120).returncode == 0


def test_runner_account_is_least_privilege(cluster, namespace):
    from kubernetes import client as k8s

    assert dok(cluster, "setup", "-n", namespace, timeout=120).returncode == 0
    authz = k8s.AuthorizationV1Api(cluster.api_client)
    user = f"system:serviceaccount:{namespace}:dok-runner"

    def allowed(verb, resource, ns=namespace, sub=""):
        attrs = {"verb": verb, "resource": resource, "namespace": ns}
        if sub:
            attrs["subresource"] = sub
        review = authz.create_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                     "resourceAttributes": attrs}})
        return review.status.allowed

    for verb in ("create", "get", "list", "watch", "delete"):
        assert allowed(verb, "pods"), verb
    assert allowed("get", "pods", sub="log")
    assert not allowed("get", "secrets")
    assert not allowed("list", "secrets")
    assert not allowed("create", "jobs")
    assert not allowed("create", "pods", ns="kube-system")
    assert not allowed("list", "pods", ns="default") or namespace == "default"
    assert not allowed("create", "roles")


def test_caller_without_job_permission_exits_2(cluster, namespace, tmp_path):
    """A kubeconfig for a ServiceAccount that may only list pods: `dok run` names what is missing."""
    import base64

    import yaml

    core, rbac = cluster.core, cluster.rbac
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "limited"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "limited"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "limited"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "limited"},
        "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": namespace}]})

    def token():
        sa = core.read_namespaced_service_account("limited", namespace)
        for ref in sa.secrets or []:
            secret = core.read_namespaced_secret(ref.name, namespace)
            if secret.data and secret.data.get("token"):
                return base64.b64decode(secret.data["token"]).decode()
        return None

    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    cfg = {"apiVersion": "v1", "kind": "Config",
           "clusters": admin["clusters"],
           "users": [{"name": "limited", "user": {"token": helpers.wait_for("a token", token, timeout=60)}}],
           "contexts": [{"name": "limited", "context": {"cluster": admin["clusters"][0]["name"],
                                                       "user": "limited", "namespace": namespace}}],
           "current-context": "limited"}
    path = tmp_path / "limited.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, "--kubeconfig", str(path),
               timeout=120)
    assert proc.returncode == 2
    assert "you may not" in proc.stderr and "create jobs.batch" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert helpers.list_by_label(cluster, "jobs", {"app.kubernetes.io/managed-by": "dok"}, namespace=namespace) == []
