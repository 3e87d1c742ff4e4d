"""The CLI's cluster commands without a cluster: bad input and an unreachable API server give one-line
errors with the right exit code (2 usage/config, 3 infrastructure) before any image is built."""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path

import pytest

from dok.launcher import commands
from dok.launcher.cli import main

DATA = Path(__file__).resolve().parent / "data"


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def dead_kubeconfig(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    return str(cfg), port


@pytest.fixture
def no_build(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("must not build an image")
    monkeypatch.setattr(commands, "build_image", fail)


def test_unreachable_cluster_exits_3_before_building(dead_kubeconfig, no_build):
    cfg, port = dead_kubeconfig
    start = time.monotonic()
    code, out, err = run_cli("run", f"{DATA}/ok_flow.py", "--kubeconfig", cfg)
    assert code == 3
    assert time.monotonic() - start < 15
    assert f"127.0.0.1:{port}" in err and "unreachable" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", [("status", "abc"), ("logs", "abc"), ("cancel", "abc"), ("cleanup", "--all"),
                                     ("list",), ("setup",)])
def test_every_cluster_command_reports_unreachable(dead_kubeconfig, command):
    cfg, _ = dead_kubeconfig
    code, _, err = run_cli(*command, "--kubeconfig", cfg)
    assert code == 3 and err.startswith("dok: error: cluster unreachable")


def test_missing_kubeconfig_file_exits_2(tmp_path):
    code, _, err = run_cli("list", "--kubeconfig", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err


def test_nothing_configured_exits_3_with_hint(tmp_path, monkeypatch, no_build):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DOK_CLUSTER_STATE", str(tmp_path / "no-cluster"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, _, err = run_cli("run", f"{DATA}/ok_flow.py")
    assert code == 3
    assert "tools/bazel run //tools:cluster -- up" in err


@pytest.mark.parametrize("argv,fragment", [
    (("--max-workers", "0"), "max_workers"),
    (("--min-workers", "4", "--max-workers", "2"), "min_workers"),
    (("-n", "Not_Valid"), "namespace"),
    (("--param", "nope=1"), "allowed parameters"),
    (("--secret-env", "TOKEN"), "malformed --secret-env"),
    (("--secret-env", "1X=s:k"), "environment variable name"),
    (("--secret-env", "X=Bad_Secret:k"), "Secret name"),
    (("--registry", "not a url"), "registry_url"),
    (("--base-image", "UPPER:case"), "base_image"),
    (("--worker-resources", "cpu"), "--worker-resources 'cpu': 'cpu' is not NAME=QUANTITY"),
    (("--job-resources", "cpu=lots"), "not a Kubernetes quantity"),
    (("--toleration", "spot:Sometimes"), "KEY[=VALUE]:EFFECT"),
    (("--node-selector", "pool"), "--node-selector 'pool' is not KEY=VALUE"),
    (("--worker-template", "/no/such/file.yaml"), "--worker-template: cannot read '/no/such/file.yaml'"),
    (("--label", "team=not valid!"), "labels="),
    (("--priority-class", "Not_Valid"), "priority_class="),
    (("--max-workers", "6", "--worker-processes", "4"), "max_workers=6: must be a multiple of worker_processes (4)"),
    (("--max-workers", "65", "--worker-processes", "65"), "worker_processes=65: must be an integer"),
    (("--max-workers", "2", "--worker-processes", "2", "--backend", "operator"), "must be 1 with backend 'operator'"),
])
def test_bad_run_options_exit_2_without_cluster(argv, fragment, no_build, dead_kubeconfig):
    cfg, _ = dead_kubeconfig
    extra = () if "--kubeconfig" in argv else ("--kubeconfig", cfg)
    code, _, err = run_cli("run", f"{DATA}/ok_flow.py", *argv, *extra)
    assert code == 2, err
    assert fragment in err
    assert "Traceback" not in err


def test_secret_looking_env_vars_warned(monkeypatch):
    err = io.StringIO()
    from dok.launcher.flowfile import load_flow

    loaded = load_flow(f"{DATA}/secret_env_flow.py")
    assert loaded.environment is not None and loaded.environment.max_workers == 2
    commands.warn_secret_env_vars(loaded.environment, err)
    assert "API_TOKEN" in err.getvalue() and "--secret-env API_TOKEN=SECRET:KEY" in err.getvalue()
    assert "LOG_LEVEL" not in err.getvalue()


def test_make_env_layers_cli_over_file_env(monkeypatch):
    from types import SimpleNamespace

    from dok.launcher.flowfile import load_flow

    monkeypatch.setenv("DOK_BASE_IMAGE", "dok-base:bookworm-py3.11")
    loaded = load_flow(f"{DATA}/secret_env_flow.py")
    args = SimpleNamespace(base_image=None, registry="localhost:5000", namespace="team-a", min_workers=None,
                           max_workers=5)
    env = commands.make_env(loaded, args)
    assert env.max_workers == 5 and env.namespace == "team-a" and env.registry_url == "localhost:5000"
    assert env.base_image == "dok-base:bookworm-py3.11"  # the file did not name one
    assert env.env_vars["LOG_LEVEL"] == "info"


def test_ca_bundle_must_exist(tmp_path):
    from types import SimpleNamespace

    from dok.launcher.exceptions import UsageError

    with pytest.raises(UsageError, match="--ca-bundle"):
        commands.ca_bundle_of(SimpleNamespace(ca_bundle=str(tmp_path / "no.pem")))
    pem = tmp_path / "ca.pem"
    pem.write_text("x")
    assert commands.ca_bundle_of(SimpleNamespace(ca_bundle=str(pem))) == str(pem)
    assert commands.ca_bundle_of(SimpleNamespace(ca_bundle=None)) is None


# -- local input is checked before the cluster is touched ---------------------------------------------------
@pytest.fixture
def no_cluster(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("must not connect to the cluster")
    monkeypatch.setattr(commands, "connect", fail)


FILES_FLOW = '''
from dok.core import DaskOnKubernetesEnvironment, Flow, task

@task
def one():
    return 1

with Flow("files-flow") as flow:
    one()

environment = DaskOnKubernetesEnvironment(files={"/nonexistent/dok-unit/data.csv": "/app/data.csv"})
'''

UNPICKLABLE_FLOW = '''
import threading
from dok.core import Flow, task

LOCK = threading.Lock()

@task
def guarded():
    with LOCK:
        return 1

with Flow("unpicklable-flow") as flow:
    guarded()
'''


@pytest.mark.parametrize("source,extra,fragments", [
    (FILES_FLOW, (), ("/nonexistent/dok-unit/data.csv", "files")),
    (UNPICKLABLE_FLOW, (), ("unpicklable-flow", "lock", "picklable")),
    (None, ("--image", "Bad Image:x"), ("'Bad Image:x'", "registry:5000/name:tag")),
])
def test_bad_local_input_fails_before_connecting(tmp_path, no_cluster, no_build, source, extra, fragments):
    path = DATA / "ok_flow.py"
    if source is not None:
        path = tmp_path / "flow.py"
        path.write_text(source)
    code, _, err = run_cli("run", str(path), "-n", "team-a", *extra)
    assert code == 2, err
    assert err.startswith("dok: error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    assert "dok build" not in err


@pytest.mark.parametrize("command", [("status",), ("logs",), ("cancel",), ("cleanup",)])
def test_invalid_identifier_is_a_usage_error(no_cluster, command):
    code, _, err = run_cli(*command, "Not A/Valid id!", "-n", "team-a")
    assert code == 2, err
    assert err.startswith("dok: error: invalid run identifier 'Not A/Valid id!'")
    assert "no run with identifier" not in err and "UUID" in err


def test_attach_refuses_invalid_identifier_without_listing():
    from dok.launcher.exceptions import UsageError
    from dok.launcher.handle import RunHandle

    class NoKube:
        def __getattr__(self, name):
            raise AssertionError(f"must not call the cluster ({name})")

    with pytest.raises(UsageError, match="invalid run identifier"):
        RunHandle.attach("Not A/Valid id!", kube=NoKube(), namespace="team-a")


# -- a Job TTL the cluster dropped -------------------------------------------------------------------------
class CreatingKube:
    """Just enough of Kube for `dok run --image … --detach`: `create` answers like the API server does,
    which drops ttlSecondsAfterFinished on Kubernetes 1.20 without the TTLAfterFinished feature gate."""

    host = "https://fake:6443"
    default_namespace = "default"

    def __init__(self, *, keeps_ttl):
        self.keeps_ttl = keeps_ttl
        self.created = []

    def ping(self):
        return "v1.20.2"

    def create(self, manifest):
        from types import SimpleNamespace

        self.created.append(manifest)
        ttl = manifest["spec"].get("ttlSecondsAfterFinished") if self.keeps_ttl else None
        return SimpleNamespace(spec=SimpleNamespace(ttl_seconds_after_finished=ttl))


def _run_detached(monkeypatch, kube, *extra):
    import dok.launcher.prepare as prepare

    monkeypatch.setattr(commands, "connect", lambda args: kube)
    monkeypatch.setattr(prepare, "setup", lambda env, **kw: prepare.SetupResult(
        namespace="team-a", service_account="dok-runner", created=[], updated=[], verified=[]))
    return run_cli("run", f"{DATA}/ok_flow.py", "-n", "team-a", "--image", "localhost:5000/ok-flow:1", "--detach",
                   *extra)


@pytest.mark.parametrize("keeps_ttl,ttl_args,warned", [(False, ("--ttl", "60"), True), (True, ("--ttl", "60"), False),
                                                      (False, (), False)])
def test_dropped_ttl_warned_once_and_run_proceeds(monkeypatch, no_build, keeps_ttl, ttl_args, warned):
    kube = CreatingKube(keeps_ttl=keeps_ttl)
    code, out, err = _run_detached(monkeypatch, kube, *ttl_args)
    assert code == 0, err
    assert len(kube.created) == 1  # the run proceeds
    lines = [line for line in err.splitlines() if "warning:" in line]
    if warned:
        assert len(lines) == 1 and "ttlSecondsAfterFinished=60" in lines[0], err
        assert "dok cleanup" in lines[0]
    else:
        assert lines == [], err
    assert out.strip().splitlines()[-1].count("-") == 4  # the identifier (--detach)


def test_pod_flags_reach_the_job(monkeypatch, no_build, tmp_path):
    template = tmp_path / "worker.yaml"
    template.write_text("metadata: {labels: {from: template}}\nspec:\n  containers:\n  - env: [{name: A, value: b}]\n")
    job_template = tmp_path / "job.tpl"  # any file name: the flag's value is always a file
    job_template.write_text("containers:\n- name: runner\n  env: [{name: J, value: '1'}]\n")
    kube = CreatingKube(keeps_ttl=True)
    code, _, err = _run_detached(monkeypatch, kube, "--worker-resources", "cpu=1,memory=2Gi,nvidia.com/gpu=1",
                                 "--job-resources", "memory=1Gi", "--node-selector", "pool=a",
                                 "--worker-toleration", "spot=true:NoSchedule", "--label", "team=ml",
                                 "--worker-template", str(template), "--job-template", str(job_template))
    assert code == 0, err
    [job] = kube.created
    pod = job["spec"]["template"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert pod["spec"]["containers"][0]["resources"] == {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert pod["spec"]["nodeSelector"] == {"pool": "a"} and "tolerations" not in pod["spec"]
    assert pod["metadata"]["labels"]["team"] == "ml" and env["J"] == "1"
    assert json.loads(env["DOK_WORKER_RESOURCES"]) == {"requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
                                                       "limits": {"memory": "2Gi", "nvidia.com/gpu": "1"}}
    assert json.loads(env["DOK_WORKER_NODE_SELECTOR"]) == {"pool": "a"}
    assert json.loads(env["DOK_WORKER_TOLERATIONS"])[0]["key"] == "spot"
    assert json.loads(env["DOK_WORKER_TEMPLATE"])["metadata"] == {"labels": {"from": "template"}}
class NoOperatorKube:
    """A cluster without the dask-kubernetes operator's CRDs; creating anything is a test failure."""

    host = "https://fake:6443"

    def ping(self):
        return "v1.20.2"

    def missing_resources(self, group, version, plurals):
        assert (group, version) == ("kubernetes.dask.org", "v1")
        return list(plurals)

    def create(self, manifest):
        raise AssertionError(f"must not create {manifest['kind']}")


def test_backend_operator_without_its_crds_exits_3_naming_them_before_creating_anything(monkeypatch, no_build):
    import dok.launcher.prepare

    monkeypatch.setattr(commands, "connect", lambda args: NoOperatorKube())
    monkeypatch.setattr(commands, "namespace_of", lambda args, kube, env=None: "ns")
    monkeypatch.setattr(dok.launcher.prepare, "setup", lambda *a, **k: pytest.fail("must not set up RBAC"))
    code, out, err = run_cli("run", f"{DATA}/ok_flow.py", "--backend", "operator")
    assert code == 3, err
    assert "daskclusters.kubernetes.dask.org" in err and "daskworkergroups.kubernetes.dask.org" in err
    assert "//tools:cluster -- operator install" in err
    assert "Traceback" not in err
