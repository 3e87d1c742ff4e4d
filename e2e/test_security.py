"""e2e (issue 6, security) on the real cluster:

- the running job pod and worker pods: non-root UID, no privilege escalation, all capabilities dropped,
  RuntimeDefault seccomp, read-only root filesystem with a writable emptyDir at /tmp — read from their
  specs AND observed from inside (the job pod via exec, each worker through a task reporting
  /proc/self/status, its UID and what it can write);
- the runner's Role grants only what the runner uses, in one namespace (SubjectAccessReview as
  system:serviceaccount:<ns>:dok-runner): pods yes; secrets, jobs, RBAC, exec, other namespaces no;
- a secret passed as a reference to a Kubernetes Secret (`--secret-env NAME=SECRET:KEY`, env from
  secretKeyRef) reaches the tasks on the workers, and its value appears nowhere: not in the Job or pod specs,
  not in dok's output, not in the image config, history or layers;
- `env_vars` keys that look like secrets (TOKEN, PASSWORD, KEY, SECRET) are warned about, by the CLI and by
  the library;
- a flow bundle is loaded only when its sha256 matches the one recorded at build time: an image whose
  bundle was swapped is refused, the swapped flow never runs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from e2e import helpers, helpers_images
from e2e.reliability_flows import BASE_IMAGE, Background, dok, flow_file, identifier_of, wait_gone, wait_running

SECURITY_FLOW = '''
from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, task, unmapped

@task
def probe(i, delay):
    """What a worker sees from inside: its UID, capabilities, seccomp, what it may write, the secret's hash."""
    import hashlib, os, socket, time
    time.sleep(float(delay))
    status = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        status[key] = value.strip()
    def writable(path):
        try:
            with open(path, "w") as fh:
                fh.write("x")
            os.unlink(path)
            return True
        except OSError:
            return False
    secret = os.environ.get("E2E_SECRET_VALUE", "")
    where = "worker" if "-worker-" in socket.gethostname() else "not-a-worker:" + socket.gethostname()
    return ("uid=%d where=%s gid=%d capeff=%s nnp=%s seccomp=%s rootfs_writable=%s tmp_writable=%s secret_sha=%s"
            % (os.getuid(), where, os.getgid(), status.get("CapEff"), status.get("NoNewPrivs"), status.get("Seccomp"),
               writable("/opt/dok/e2e-probe"), writable("/tmp/e2e-probe"),
               hashlib.sha256(secret.encode()).hexdigest() if secret else "missing"))

@task
def report(lines):
    return sorted(set(lines))

with Flow("e2e-security") as flow:
    n = Parameter("n", default=4)
    delay = Parameter("delay", default=8.0)
    report(probe.map(list(range(4)), unmapped(delay)))

environment = DaskOnKubernetesEnvironment(image_name="dok-e2e-security", max_workers=2,
                                          env_vars={"E2E_API_TOKEN": "baked-into-the-image-on-purpose"})
'''

EVIL_FLOW_MARKER = "E2E-SWAPPED-BUNDLE-RAN"


@pytest.fixture(scope="module")
def security_image(cluster: helpers.Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The flow file and its image, built once with `dok build` (the build output is kept for the warning)."""
    tmp = tmp_path_factory.mktemp("security")
    path = flow_file(tmp, SECURITY_FLOW)
    proc = dok(cluster, "build", path, "--no-push", timeout=900)
    assert proc.returncode == 0, proc.stderr
    return {"path": path, "image": proc.stdout.strip().splitlines()[-1], "build": proc}


# ---- securityContext, seen from the spec and from inside -------------------------------------------------------
def _container_ctx(pod: Any) -> tuple[Any, Any]:
    return pod.spec.security_context, pod.spec.containers[0].security_context


def _assert_restricted(pod: Any) -> None:
    name = pod.metadata.name
    psc, csc = _container_ctx(pod)
    non_root = (csc.run_as_non_root if csc and csc.run_as_non_root is not None else psc and psc.run_as_non_root)
    assert non_root is True, f"{name}: runAsNonRoot not set"
    uid = (csc.run_as_user if csc and csc.run_as_user is not None else psc and psc.run_as_user)
    assert uid not in (None, 0), f"{name}: runAsUser {uid}"
    assert csc is not None and csc.allow_privilege_escalation is False, f"{name}: allowPrivilegeEscalation"
    assert csc.privileged in (None, False), f"{name}: privileged"
    assert csc.capabilities is not None and csc.capabilities.drop == ["ALL"], f"{name}: capabilities {csc.capabilities}"
    assert not (csc.capabilities.add or []), f"{name}: adds capabilities {csc.capabilities.add}"
    seccomp = (csc.seccomp_profile or (psc.seccomp_profile if psc else None))
    assert seccomp is not None and seccomp.type == "RuntimeDefault", f"{name}: seccomp {seccomp}"
    assert csc.read_only_root_filesystem is True, f"{name}: readOnlyRootFilesystem"
    mounts = {m.mount_path: m.name for m in pod.spec.containers[0].volume_mounts or []}
    assert "/tmp" in mounts, f"{name}: no writable /tmp mount: {mounts}"
    volume = next(v for v in pod.spec.volumes if v.name == mounts["/tmp"])
    assert volume.empty_dir is not None, f"{name}: /tmp is not an emptyDir: {volume}"
    assert not pod.spec.host_network and not pod.spec.host_pid and not pod.spec.host_ipc, f"{name}: host namespaces"
    assert not [v for v in pod.spec.volumes if v.host_path], f"{name}: hostPath volume"


def _exec(namespace: str, pod: str, container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "exec", "-n", namespace, pod, "-c", container, "--", *command],
                          capture_output=True, text=True, timeout=60)


def test_pods_are_restricted_and_secrets_come_from_secret_refs(cluster: helpers.Cluster, namespace: str,
                                                               tmp_path: Path, security_image: dict[str, Any]) -> None:
    value = "e2e-" + secrets.token_hex(16)
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "e2e-creds"},
                                                      "stringData": {"token": value}})
    bg = Background(cluster, "run", security_image["path"], "--image", security_image["image"], "-n", namespace,
                    "--rm", "--max-workers", "2", "--secret-env", "E2E_SECRET_VALUE=e2e-creds:token")
    try:
        ident = bg.wait_identifier()
        job_pod, workers = wait_running(cluster, namespace, ident, workers=1, bg=bg)
        # the specs, read from the API while the pods run
        job_obj = cluster.batch.list_namespaced_job(namespace, label_selector=f"dok.dev/identifier={ident}").items[0]
        job_pod = cluster.core.read_namespaced_pod(job_pod.metadata.name, namespace)
        checked = [job_pod] + [cluster.core.read_namespaced_pod(w.metadata.name, namespace) for w in workers]
        for pod in checked:
            _assert_restricted(pod)
            for var in pod.spec.containers[0].env or []:
                if var.name == "E2E_SECRET_VALUE":
                    assert var.value is None and var.value_from.secret_key_ref.name == "e2e-creds", var
        assert [w for w in checked[1:] if not w.spec.automount_service_account_token is False] == [], \
            "worker pods must not mount a service-account token"
        assert job_pod.spec.service_account_name == "dok-runner"
        specs = json.dumps(cluster.api_client.sanitize_for_serialization(checked + [job_obj]))
        assert value not in specs, "the secret's value is in a Job/pod spec"
        assert "secretKeyRef" in specs
        # the job pod, from inside
        container = job_pod.spec.containers[0].name
        ident_out = _exec(namespace, job_pod.metadata.name, container, "id", "-u")
        assert ident_out.returncode == 0 and ident_out.stdout.strip() not in ("", "0"), ident_out
        rootfs = _exec(namespace, job_pod.metadata.name, container, "touch", "/opt/dok/e2e-probe")
        assert rootfs.returncode != 0 and "Read-only file system" in rootfs.stderr, rootfs
        tmpfs = _exec(namespace, job_pod.metadata.name, container, "touch", "/tmp/e2e-probe")
        assert tmpfs.returncode == 0, tmpfs
        status = _exec(namespace, job_pod.metadata.name, container, "cat", "/proc/1/status").stdout
        fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in status.splitlines()))
        assert fields["CapEff"] == "0000000000000000", fields["CapEff"]
        assert fields["NoNewPrivs"] == "1", fields["NoNewPrivs"]
        assert fields["Seccomp"] == "2", f"seccomp mode {fields['Seccomp']} (2 = filter)"
        code = bg.finish(timeout=300)
    finally:
        bg.kill()
    text = bg.stdout + bg.stderr
    assert code == 0, text
    want_sha = hashlib.sha256(value.encode()).hexdigest()
    reports = [line for line in text.replace("'", "\n").splitlines() if line.startswith("uid=")]
    assert reports, f"no worker report in the output:\n{bg.stdout}"
    for rep in reports:  # each distinct worker's view
        assert "uid=0 " not in rep, rep
        assert "capeff=0000000000000000" in rep and "nnp=1" in rep and "seccomp=2" in rep, rep
        assert "rootfs_writable=False" in rep and "tmp_writable=True" in rep, rep
        assert f"secret_sha={want_sha}" in rep, f"the secret did not reach the task: {rep}"
        assert " where=worker " in rep, f"the task did not run on a worker pod: {rep}"
    assert value not in text, "the secret's value was printed"
    wait_gone(cluster, namespace, ident)
    # ... and the image never saw it
    _assert_not_in_image(security_image["image"], value)


def _assert_not_in_image(image: str, value: str) -> None:
    import docker

    client = docker.from_env()
    img = client.images.get(image)
    config = json.dumps(img.attrs.get("Config") or {})
    assert value not in config, "the secret is in the image config"
    history = json.dumps(img.history())
    assert value not in history, "the secret is in the image history"
    user = (img.attrs.get("Config") or {}).get("User") or ""
    assert user and user.split(":")[0] not in ("0", "root"), f"the image runs as {user!r}"
    needle = value.encode()
    tail = b""
    for chunk in img.save(chunk_size=1 << 20):  # every layer
        assert needle not in tail + chunk, "the secret is in an image layer"
        tail = chunk[-len(needle):]


# ---- RBAC --------------------------------------------------------------------------------------------------
def _sar(cluster: helpers.Cluster, user: str, namespace: str | None, verb: str, resource: str, group: str = "",
         subresource: str = "") -> bool:
    from kubernetes import client

    attrs = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attrs["namespace"] = namespace
    if subresource:
        attrs["subresource"] = subresource
    review = client.AuthorizationV1Api(cluster.api_client).create_subject_access_review(
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
         "spec": {"user": user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                           "system:authenticated"], "resourceAttributes": attrs}})
    return bool(review.status.allowed)


def test_runner_role_is_least_privilege(cluster: helpers.Cluster, namespace: str) -> None:
    proc = dok(cluster, "setup", "-n", namespace, timeout=120)
    assert proc.returncode == 0, proc.stderr
    user = f"system:serviceaccount:{namespace}:dok-runner"
    may = [("create", "pods"), ("delete", "pods"), ("get", "pods"), ("list", "pods"), ("watch", "pods")]
    for verb, resource in may:
        assert _sar(cluster, user, namespace, verb, resource), f"the runner may not {verb} {resource}"
    assert _sar(cluster, user, namespace, "get", "pods", subresource="log")
    denied = [
        (namespace, "get", "secrets", "", ""), (namespace, "list", "secrets", "", ""),
        (namespace, "watch", "secrets", "", ""), (namespace, "get", "configmaps", "", ""),
        (namespace, "create", "jobs", "batch", ""), (namespace, "delete", "jobs", "batch", ""),
        (namespace, "create", "pods", "", "exec"), (namespace, "create", "pods", "", "attach"),
        (namespace, "update", "pods", "", ""), (namespace, "patch", "pods", "", ""),
        (namespace, "create", "roles", "rbac.authorization.k8s.io", ""),
        (namespace, "create", "rolebindings", "rbac.authorization.k8s.io", ""),
        (namespace, "create", "serviceaccounts", "", "token"), (namespace, "create", "services", "", ""),
        ("default", "create", "pods", "", ""), ("default", "list", "pods", "", ""),
        ("kube-system", "get", "secrets", "", ""), (None, "list", "pods", "", ""),
        (None, "list", "namespaces", "", ""), (None, "list", "nodes", "", ""),
    ]
    allowed = [f"{verb} {res}{'/' + sub if sub else ''} in {ns or 'all namespaces'}"
               for ns, verb, res, group, sub in denied if _sar(cluster, user, ns, verb, res, group, sub)]
    assert not allowed, f"the runner's account may also: {allowed}"
    # the Role is namespaced and nothing cluster-wide is bound to the account
    role = cluster.rbac.read_namespaced_role("dok-runner", namespace)
    granted = {(g, r, v) for rule in role.rules for g in rule.api_groups for r in rule.resources for v in rule.verbs}
    assert all((g == "" and r in ("pods", "pods/log", "events")) or (g, r) == ("batch", "jobs")
               for g, r, _ in granted), granted
    assert {v for g, _, v in granted if g == "batch"} == {"get", "patch"}  # its Job's TTL after a success
    assert not [v for g, _, v in granted if v in ("*", "update", "escalate", "bind", "impersonate")
                or (v == "patch" and g != "batch")]
    for crb in cluster.rbac.list_cluster_role_binding().items:
        for subject in crb.subjects or []:
            assert not (subject.kind == "ServiceAccount" and subject.name == "dok-runner"
                        and subject.namespace == namespace), f"ClusterRoleBinding {crb.metadata.name}"


# ---- env_vars that look like secrets ----------------------------------------------------------------------------
def test_cli_warns_about_secret_looking_env_vars(security_image: dict[str, Any]) -> None:
    err = security_image["build"].stderr
    warning = [line for line in err.splitlines() if "E2E_API_TOKEN" in line]
    assert warning and "warning" in warning[0].lower(), err
    assert "--secret-env" in warning[0], "the warning should say what to do instead"


@pytest.mark.parametrize("name", ["GITHUB_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "API_KEY"])
def test_library_warns_about_secret_looking_env_vars(name: str) -> None:
    """`DaskOnKubernetesEnvironment(env_vars=…)` used from Python (no CLI): a warning naming the key."""
    from dok.core import DaskOnKubernetesEnvironment

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DaskOnKubernetesEnvironment(env_vars={name: "value", "PLAIN_SETTING": "1"}, base_image=BASE_IMAGE)
    texts = [str(w.message) for w in caught]
    assert any(name in t for t in texts), f"no warning naming {name}: {texts}"
    assert not any("PLAIN_SETTING" in t for t in texts), texts


# ---- the bundle's hash ------------------------------------------------------------------------------------------
EVIL_FLOW = f'''
from dok.core import Flow, task

@task
def evil():
    print("{EVIL_FLOW_MARKER}", flush=True)
    return "{EVIL_FLOW_MARKER}"

with Flow("e2e-security") as flow:
    evil()
'''


def test_swapped_bundle_is_refused(cluster: helpers.Cluster, namespace: str, tmp_path: Path,
                                   security_image: dict[str, Any]) -> None:
    """An image whose /opt/dok/flow.dokflow was replaced after the build (DOK_BUNDLE_SHA256 unchanged):
    the runner refuses to load it, the run fails with the hash mismatch, the swapped flow never runs."""
    import importlib

    from dok.core import bundle

    spec = importlib.util.spec_from_file_location("e2e_evil_flow", flow_file(tmp_path, EVIL_FLOW, "evil.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["e2e_evil_flow"] = module
    spec.loader.exec_module(module)
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    data, info = bundle.dumps(module.flow)
    tampered = helpers_images.build_image(
        "dok-e2e-security-tampered:1",
        f"FROM {security_image['image']}\nUSER 0\nCOPY evil.dokflow /opt/dok/flow.dokflow\n"
        "RUN chmod 0644 /opt/dok/flow.dokflow\nUSER 1000:1000\n",
        {"evil.dokflow": data})
    import docker

    env = dict(e.split("=", 1) for e in docker.from_env().images.get(tampered).attrs["Config"]["Env"])
    assert env.get("DOK_BUNDLE_SHA256") and env["DOK_BUNDLE_SHA256"] != info.sha256
    started = time.monotonic()
    proc = dok(cluster, "run", security_image["path"], "--image", tampered, "-n", namespace, "--rm",
               "--max-workers", "1",
               timeout=300)
    took = time.monotonic() - started
    text = proc.stdout + proc.stderr
    assert proc.returncode in (1, 3), text
    assert proc.returncode == 3, f"a bundle that fails its hash check is an infrastructure error (3):\n{text}"
    assert "sha256" in text.lower() or "hash" in text.lower(), text
    assert info.sha256[:12] in text or env["DOK_BUNDLE_SHA256"][:12] in text, "the message should name the hashes"
    assert EVIL_FLOW_MARKER not in text, "the swapped flow ran"
    assert "Traceback" not in proc.stderr
    assert took < 120, f"took {took:.0f}s"
    wait_gone(cluster, namespace, identifier_of(proc.stderr))
