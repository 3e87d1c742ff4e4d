"""e2e (issue 6): the bad-input catalogue — every case runs the real `dok` CLI as a subprocess against the
real cluster, each in its own namespace, and asserts:

- exactly one `dok: error:` line that names the offending value, plus how to fix it (a hint);
- the right exit code: 2 usage/configuration, 3 infrastructure (cluster/registry unreachable), 130 Ctrl-C;
- no traceback (unless --debug, see test_debug_shows_the_traceback);
- nothing left in the cluster (no Job, no pod in the test's namespace) and no half-built image tag.

Most cases fail before any build or cluster call and take well under a second of dok's time.
"""

from __future__ import annotations

import base64
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from e2e import helpers, helpers_images
from e2e.reliability_flows import (Background, assert_cli_error, dok, dok_env, flow_file, image_tags,
                                   remove_image_tags)

OK_FLOW = '''
from dok.core import Flow, Parameter, task

@task
def inc(x):
    return x + 1

with Flow("e2e-bad-input-ok") as flow:
    n = Parameter("n", default=1)
    inc(n)

notaflow = 3
'''

SYNTAX_ERROR_FLOW = '''
from dok.core import Flow, task
with Flow("e2e-syntax") as flow
    pass
'''

CYCLE_FLOW = '''
from dok.core import Flow, task

@task
def a():
    return 1

@task
def b():
    return 2

with Flow("e2e-cycle") as flow:
    x = a()
    y = b()
    y.set_upstream(x)
    x.set_upstream(y)
'''

ENV_FLOW = '''
from dok.core import DaskOnKubernetesEnvironment, Flow, task

@task
def one():
    return 1

with Flow("{flow_name}") as flow:
    one()

environment = DaskOnKubernetesEnvironment({env_args})
'''

UNPICKLABLE_FLOW = '''
import threading
from dok.core import DaskOnKubernetesEnvironment, Flow, task

LOCK = threading.Lock()

@task
def guarded():
    with LOCK:
        return 1

with Flow("e2e-unpicklable") as flow:
    guarded()

environment = DaskOnKubernetesEnvironment(image_name="dok-e2e-bi-unpicklable")
'''


def env_flow(tmp_path: Path, env_args: str, flow_name: str = "e2e-bad-env") -> str:
    return flow_file(tmp_path, ENV_FLOW.replace("{flow_name}", flow_name).replace("{env_args}", env_args))


def assert_nothing_left(cluster: helpers.Cluster, namespace: str) -> None:
    jobs = cluster.batch.list_namespaced_job(namespace).items
    pods = cluster.core.list_namespaced_pod(namespace).items
    assert not jobs and not pods, (f"left in {namespace}: {[j.metadata.name for j in jobs]} "
                                   f"{[p.metadata.name for p in pods]}")


# ---- cheap cases: the flow file, parameters, options, names -------------------------------------------------
# (id, flow source or None for OK_FLOW, extra args (FLOW is replaced by the file), exit code, names, fix)
CHEAP_CASES: list[tuple[str, str | None, list[str], int, tuple[str, ...], tuple[str, ...]]] = [
    ("flow-file-missing", None, ["run", "no-such-flow.py"], 2, ("no-such-flow.py",), ()),
    ("flow-file-syntax-error", SYNTAX_ERROR_FLOW, ["run", "FLOW"], 2, ("flow.py:3", "syntax"), ()),
    ("flow-attribute-missing", None, ["run", "FLOW:nosuch"], 2, ("'nosuch'",), ("flow",)),
    ("not-a-flow", None, ["run", "FLOW:notaflow"], 2, ("notaflow", "not a dok Flow"), ("flow",)),
    ("flow-with-cycle", CYCLE_FLOW, ["run", "FLOW"], 2, ("cycle", "a", "b"), ("remove one",)),
    ("unknown-param", None, ["run", "FLOW", "--param", "zz=1"], 2, ("zz",), ("n",)),
    ("malformed-param", None, ["run", "FLOW", "--param", "justaname"], 2, ("justaname",), ("NAME=VALUE",)),
    ("param-name-invalid", None, ["run", "FLOW", "--param", "9 lives=1"], 2, ("9 lives",), ()),
    ("max-workers-zero", None, ["run", "FLOW", "--max-workers", "0"], 2, ("max_workers", "0"), (">= 1",)),
    ("max-workers-negative", None, ["run", "FLOW", "--max-workers", "-2"], 2, ("-2",), ()),
    ("min-workers-above-max", None, ["run", "FLOW", "--min-workers", "3", "--max-workers", "2"], 2,
     ("min_workers", "3", "2"), ()),
    ("invalid-namespace", None, ["run", "FLOW", "-n", "Bad_Namespace"], 2, ("Bad_Namespace",), ("lowercase",)),
    ("invalid-secret-env-name", None, ["run", "FLOW", "--secret-env", "1BAD=creds:token"], 2, ("1BAD",),
     ("letters",)),
    ("malformed-secret-env", None, ["run", "FLOW", "--secret-env", "TOKEN=creds"], 2, ("creds",), ("SECRET:KEY",)),
    ("invalid-deadline", None, ["run", "FLOW", "--active-deadline", "soon"], 2, ("soon",), ("seconds",)),
]


@pytest.mark.parametrize("case", CHEAP_CASES, ids=[c[0] for c in CHEAP_CASES])
def test_cheap_bad_input(cluster: helpers.Cluster, namespace: str, tmp_path: Path, case: Any) -> None:
    _, source, args, code, names, fix = case
    path = flow_file(tmp_path, source or OK_FLOW)
    args = [a.replace("FLOW", path) for a in args]
    if "-n" not in args:
        args += ["-n", namespace]
    started = time.monotonic()
    proc = dok(cluster, *args, timeout=120, cwd=tmp_path)
    took = time.monotonic() - started
    assert_cli_error(proc, code, names, fix)
    assert took < 30, f"a bad input took {took:.1f}s to refuse"
    assert_nothing_left(cluster, namespace)


# ---- the environment in the flow file (image name, tag, env var names, labels) ------------------------------
ENV_CASES = [
    ("invalid-image-name", 'image_name="Bad Name!"', ("image_name", "Bad Name!"), ("lowercase",)),
    ("invalid-image-tag", 'image_name="dok-e2e-bi-tag", image_tag="bad tag!"', ("image_tag", "bad tag!"), ()),
    ("invalid-env-var-name", 'env_vars={"1BAD": "x"}', ("env_vars", "1BAD"), ("[A-Za-z_]",)),
    ("reserved-env-var-name", 'env_vars={"DOK_IDENTIFIER": "x"}', ("DOK_IDENTIFIER",), ("reserved",)),
    ("invalid-registry-url", 'registry_url="http://no spaces allowed"', ("registry_url",), ()),
    ("max-workers-below-min-in-env", "min_workers=4, max_workers=2", ("min_workers", "4"), ("max_workers",)),
]


@pytest.mark.parametrize("case", ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_bad_environment(cluster: helpers.Cluster, namespace: str, tmp_path: Path, case: Any) -> None:
    _, env_args, names, fix = case
    proc = dok(cluster, "run", env_flow(tmp_path, env_args), "-n", namespace, timeout=120)
    assert_cli_error(proc, 2, names, fix)
    assert_nothing_left(cluster, namespace)


def test_identifier_that_is_not_a_label_value(cluster: helpers.Cluster, namespace: str,
                                                                        tmp_path: Path) -> None:
    """An invalid label value: the run identifier given to a command (a label selector value). dok refuses
    it with one line naming it, without a 400 from the API server."""
    proc = dok(cluster, "status", "Not A/Valid id!", "-n", namespace, timeout=60)
    assert_cli_error(proc, 2, ("Not A/Valid id!",))
    assert "400" not in proc.stderr and "Bad Request" not in proc.stderr


# ---- build-time failures: no half-built image tag -------------------------------------------------------------
def test_files_entry_missing(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    repo = "dok-e2e-bi-files"
    proc = dok(cluster, "run", env_flow(tmp_path, f'image_name="{repo}", '
                                        'files={"/nonexistent/dok-e2e/data.csv": "/app/data.csv"}'),
               "-n", namespace, timeout=300)
    assert_cli_error(proc, 2, ("/nonexistent/dok-e2e/data.csv",), ("files",))
    assert image_tags(repo) == []
    assert_nothing_left(cluster, namespace)


def test_unpicklable_object_captured_by_a_task(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    proc = dok(cluster, "run", flow_file(tmp_path, UNPICKLABLE_FLOW), "-n", namespace, timeout=300)
    assert_cli_error(proc, 2, ("e2e-unpicklable", "lock"), ("picklable",))
    assert image_tags("dok-e2e-bi-unpicklable") == []
    assert_nothing_left(cluster, namespace)


def test_dependency_pip_cannot_install(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    repo = "dok-e2e-bi-pip"
    remove_image_tags(repo)
    proc = dok(cluster, "run", env_flow(tmp_path, f'image_name="{repo}", '
                                        'python_dependencies=["dok-e2e-no-such-package==0.0.1"]'),
               "-n", namespace, timeout=900)
    assert_cli_error(proc, 2, ("dok-e2e-no-such-package",))
    assert image_tags(repo) == [], "a half-built image was tagged"
    assert_nothing_left(cluster, namespace)


# sitecustomize that makes the base image's python3 report another version (as a python3.9 image would)
FAKE_PY39 = "import sys\nsys.version_info = (3, 9, 2, 'final', 0)\nsys.version = '3.9.2 (fake)'\n"


def test_base_image_with_another_python_version(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    base = helpers_images.build_image(
        "dok-e2e-bi-python39:1",
        f"FROM {helpers_images.ensure_base_image()}\nCOPY sitecustomize.py /opt/fakever/sitecustomize.py\n"
        "ENV PYTHONPATH=/opt/fakever\n",
        {"sitecustomize.py": FAKE_PY39})
    repo = "dok-e2e-bi-py39flow"
    remove_image_tags(repo)
    proc = dok(cluster, "run", env_flow(tmp_path, f'image_name="{repo}"'), "-n", namespace, "--base-image", base,
               timeout=600)
    line = assert_cli_error(proc, 2, ("3.9",))
    assert "3.11" in proc.stderr, "the error should say which Python is needed"
    assert image_tags(repo) == [], f"a half-built image was tagged ({line})"
    assert_nothing_left(cluster, namespace)


# A base image whose python3 takes 30 s to start: the build is surely running when Ctrl-C comes.
SLOW_START = "import time\ntime.sleep(30)\n"


def test_ctrl_c_during_build(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    import docker

    base = helpers_images.build_image(
        "dok-e2e-bi-slowbase:1",
        f"FROM {helpers_images.ensure_base_image()}\nCOPY sitecustomize.py /opt/slow/sitecustomize.py\n"
        "ENV PYTHONPATH=/opt/slow\n",
        {"sitecustomize.py": SLOW_START})
    repo = "dok-e2e-bi-sigint"
    remove_image_tags(repo)
    bg = Background(cluster, "run", env_flow(tmp_path, f'image_name="{repo}"'), "-n", namespace,
                    "--base-image", base)
    try:
        helpers.wait_for("dok to start building", lambda: "building the image" in bg.stderr
                         or bg.proc.poll() is not None, timeout=120, interval=0.2)
        assert bg.proc.poll() is None, bg.stderr
        time.sleep(3)  # inside the build (python3 sleeps 30 s)
        bg.proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        code = bg.finish(timeout=60)
        took = time.monotonic() - started
    finally:
        bg.kill()
    text = bg.stdout + bg.stderr
    assert code == 130, f"exit code {code}\n{text}"
    assert "Traceback" not in text, text
    assert "interrupted" in bg.stderr.lower(), bg.stderr
    assert took < 15, f"Ctrl-C took {took:.1f}s to take effect"
    assert image_tags(repo) == [], "a half-built image was tagged"
    # no build container left behind by the interrupted build (the daemon cancels it)
    client = docker.from_env()

    def build_containers() -> list[Any]:  # the interrupted step runs the Python check (`sys.version_info`)
        found = []
        for c in client.containers.list(all=True):
            cmd = " ".join((c.attrs.get("Config") or {}).get("Cmd") or [])
            if "version_info" in cmd and not (c.labels or {}).get("io.kubernetes.pod.name"):
                found.append(c)
        return found
    helpers.wait_for("no build container of the interrupted build", lambda: not build_containers(), timeout=60)
    assert_nothing_left(cluster, namespace)


# ---- the cluster: kubeconfig, reachability, namespace, permissions ----------------------------------------------
def test_no_kubeconfig_at_all(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    env = dok_env(None, KUBECONFIG=None, HOME=str(tmp_path), DOK_CLUSTER_STATE=str(tmp_path / "no-cluster"),
                  KUBERNETES_SERVICE_HOST=None)
    proc = dok(None, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, env=env, timeout=60)
    assert_cli_error(proc, 3, ("no Kubernetes cluster configured",), ("cluster",))
    assert_nothing_left(cluster, namespace)


def test_kubeconfig_file_missing(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.kubeconfig")
    proc = dok(None, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace,
               env=dok_env(None, KUBECONFIG=missing), timeout=60)
    assert_cli_error(proc, 2, (missing,), ("KUBECONFIG",))


def test_unreachable_cluster(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "unreachable.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', "
        "insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: x\n"
        "  context: {cluster: c, user: u}\ncurrent-context: x\n")
    started = time.monotonic()
    proc = dok(None, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace,
               env=dok_env(None, KUBECONFIG=str(kubeconfig)), timeout=120)
    took = time.monotonic() - started
    assert_cli_error(proc, 3, ("127.0.0.1:1",), ("running",))
    assert took < 30, f"took {took:.1f}s to say the cluster is unreachable"


def test_namespace_that_does_not_exist(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    missing = f"{namespace}-missing"
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", missing, timeout=120)
    assert_cli_error(proc, 2, (missing,), ("kubectl create namespace",))
    assert not [n for n in cluster.core.list_namespace().items if n.metadata.name == missing]


def _token_kubeconfig(cluster: helpers.Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount `account` (its legacy token Secret, Kubernetes 1.20)."""
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    sa = helpers.wait_for(f"the token of {account}", lambda: (lambda s: s if s.secrets else None)(
        cluster.core.read_namespaced_service_account(account, namespace)), timeout=60)
    secret = cluster.core.read_namespaced_secret(sa.secrets[0].name, namespace)
    token = base64.b64decode(secret.data["token"]).decode()
    conf = cluster.api_client.configuration
    ca = Path(conf.ssl_ca_cert).read_text() if conf.ssl_ca_cert else base64.b64decode(secret.data["ca.crt"]).decode()
    ca_b64 = base64.b64encode(ca.encode()).decode()
    path.write_text(
        f"apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {conf.host}\n"
        f"    certificate-authority-data: {ca_b64}\nusers:\n- name: u\n  user:\n    token: {token}\n"
        f"contexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: {namespace}}}\ncurrent-context: x\n")
    return path


def test_caller_not_allowed_to_create_jobs(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    kubeconfig = _token_kubeconfig(cluster, namespace, "e2e-nobody", tmp_path / "nobody.kubeconfig")
    proc = dok(None, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace,
               env=dok_env(None, KUBECONFIG=str(kubeconfig)), timeout=120)
    assert_cli_error(proc, 2, ("create jobs", namespace), ("Role",))
    assert_nothing_left(cluster, namespace)
    assert not [r for r in cluster.rbac.list_namespaced_role(namespace).items if r.metadata.name == "dok-runner"]


def test_runner_account_without_pod_permissions(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    """A Role `dok-runner` that dok did not create and that lacks the pod verbs: refused, naming what lacks."""
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": "dok-runner"}})
    cluster.rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "dok-runner"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
    cluster.rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "dok-runner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dok-runner"},
        "subjects": [{"kind": "ServiceAccount", "name": "dok-runner", "namespace": namespace}]})
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, timeout=120)
    assert_cli_error(proc, 2, ("dok-runner", "create pods"), ())
    assert_nothing_left(cluster, namespace)


# ---- registries ---------------------------------------------------------------------------------------------
def _registry_container() -> Any:
    """tools/registry/registry_container.py: a registry container started/removed by testcontainers."""
    try:  # under Bazel: deps = ["//tools/registry:registry_container"] (imports = ["."])
        import registry_container

        return registry_container
    except ImportError:
        pass
    for root in (Path(__file__).parent.parent, Path(__file__).resolve().parent.parent):
        path = root / "tools" / "registry"
        if (path / "registry_container.py").is_file():
            sys.path.insert(0, str(path))
            import registry_container

            return registry_container
    pytest.fail("tools/registry/registry_container.py not found (add //tools/registry:registry_container)")


def test_registry_unreachable(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    repo = "dok-e2e-bi-noreg"
    started = time.monotonic()
    proc = dok(cluster, "run", env_flow(tmp_path, f'image_name="{repo}"'), "-n", namespace,
               "--registry", "127.0.0.1:1", "--push", timeout=300)
    took = time.monotonic() - started
    assert_cli_error(proc, 3, ("127.0.0.1:1",))
    assert not [t for t in image_tags(f"127.0.0.1:1/{repo}")], "an image was tagged for the unreachable registry"
    assert took < 60, f"took {took:.1f}s: the registry should be checked before building"
    assert_nothing_left(cluster, namespace)


def test_wrong_registry_credentials(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    with _registry_container().running_registry(user="dok-e2e", password="right-password") as reg:
        repo = "dok-e2e-bi-badcreds"
        env = dok_env(cluster, DOK_REGISTRY_USERNAME="dok-e2e", DOK_REGISTRY_PASSWORD="wrong-password")
        started = time.monotonic()
        proc = dok(cluster, "run", env_flow(tmp_path, f'image_name="{repo}"'), "-n", namespace,
                   "--registry", reg.url, "--push", env=env, timeout=300)
        took = time.monotonic() - started
        line = assert_cli_error(proc, 2, (reg.url,))
        assert "wrong-password" not in proc.stdout + proc.stderr, "the password was printed"
        assert "credential" in proc.stderr.lower() or "401" in line or "unauthorized" in line.lower(), proc.stderr
        assert took < 60, f"took {took:.1f}s: credentials should be checked before building"
        assert not image_tags(f"{reg.url}/{repo}"), "an image was tagged for a registry we cannot push to"
    assert_nothing_left(cluster, namespace)


# ---- commands on runs that do not exist --------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["status", "logs", "cancel"])
def test_unknown_identifier(cluster: helpers.Cluster, namespace: str, command: str) -> None:
    ident = "00000000-0000-4000-8000-0000000e2e06"
    proc = dok(cluster, command, ident, "-n", namespace, timeout=60)
    assert_cli_error(proc, 2, (ident,), ("dok list",))


def test_debug_shows_the_traceback(cluster: helpers.Cluster, namespace: str, tmp_path: Path) -> None:
    proc = dok(cluster, "run", flow_file(tmp_path, CYCLE_FLOW), "-n", namespace, "--debug", timeout=60)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert "cycle" in proc.stderr
