"""e2e (issue 11: outcome-dependent teardown, failure causes, progress) on the real cluster:

- a finished run with the default teardown: worker pods are gone, the Job and its job pod stay with the success
  TTL (shortened by the runner), `dok status` / `dok logs` work on it, `dok run`'s non-terminal output is the
  grouped progress (no raw records), `dok cleanup` removes it;
- a failing run keeps the failure TTL;
- `dok run --rm` leaves nothing;
- a worker pod OOM-killed by a task allocating past a small memory limit is named OOMKilled in the final State.

One image (`dok build`) for every case; the flow's `mode` parameter picks what it does.
"""

from __future__ import annotations

import re
import time

import pytest

from e2e import helpers
from e2e.reliability_flows import (COMPONENT_LABEL, IDENT_LABEL, build_image_cli, dok, flow_file, identifier_of,
                                   wait_gone)

FLOW = '''
from dok.core import Flow, Parameter, task

@task
def numbers(mode):
    return list(range(6))

@task
def work(x, mode):
    import time
    if mode == "fail" and x == 3:
        raise ValueError("teardown-e2e-failure")
    if mode == "oom":
        hog = b"x" * (1024 ** 3)  # 1 GiB, far past the worker's limit: the kernel kills the pod
        return len(hog)
    time.sleep(0.5)
    return x * 2

@task
def total(xs):
    return sum(xs)

with Flow("e2e-teardown") as flow:
    mode = Parameter("mode", default="ok")
    total(work.map(numbers(mode), mode=mode))
'''


@pytest.fixture(scope="module")
def image(cluster: helpers.Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = flow_file(tmp_path_factory.mktemp("teardown"), FLOW)
    return {"path": path, "image": build_image_cli(cluster, path)}


def run(cluster, image, namespace, mode, *extra, timeout=420):
    return dok(cluster, "run", image["path"], "--image", image["image"], "-n", namespace, "--max-workers", "2",
               "--param", f"mode={mode}", *extra, timeout=timeout)


def job_of(cluster, namespace, identifier):
    jobs = helpers.list_by_label(cluster, "jobs", {IDENT_LABEL: identifier}, namespace=namespace)
    return jobs[0] if jobs else None


def pods_by_component(cluster, namespace, identifier):
    pods = helpers.list_by_label(cluster, "pods", {IDENT_LABEL: identifier}, namespace=namespace)
    out: dict[str, list] = {}
    for pod in pods:
        out.setdefault((pod.metadata.labels or {}).get(COMPONENT_LABEL), []).append(pod)
    return out


def test_finished_run_keeps_job_and_pod_with_success_ttl(cluster, namespace, image):
    proc = run(cluster, image, namespace, "ok", "--ttl-success", "300", "--ttl-failure", "7200")
    assert proc.returncode == 0, proc.stderr
    identifier = identifier_of(proc.stderr)
    assert "stay until the success TTL" in proc.stderr and f"dok cleanup {identifier}" in proc.stderr
    # not a terminal: grouped progress lines, no raw records, no per-task success lines
    assert re.search(r"\[progress [0-9ms]+\] work: 6 done \(6 success\)", proc.stdout), proc.stdout
    assert "[dok-progress]" not in proc.stdout and "SUCCESS  [" not in proc.stdout

    job = job_of(cluster, namespace, identifier)
    assert job is not None, "the finished Job was deleted"
    assert job.spec.ttl_seconds_after_finished == 300, job.spec  # created with 7200, shortened by the runner
    pods = pods_by_component(cluster, namespace, identifier)
    live_workers = [p.metadata.name for c, ps in pods.items() if c != "job" for p in ps
                    if p.status.phase in ("Running", "Pending") and not p.metadata.deletion_timestamp]
    assert not live_workers, f"worker pods still running when `dok run` returned: {live_workers}"
    # `dok run` returns as soon as it has the runner's State (its workers deleted, its TTL set); the kubelet
    # reports the job container's exit a moment later.
    deadline = time.monotonic() + 15
    while [p.status.phase for p in pods.get("job", [])] != ["Succeeded"] and time.monotonic() < deadline:
        time.sleep(0.5)
        pods = pods_by_component(cluster, namespace, identifier)
    assert [p.status.phase for p in pods.get("job", [])] == ["Succeeded"], pods
    live_workers = [p.metadata.name for c, ps in pods.items() if c != "job" for p in ps
                    if p.status.phase in ("Running", "Pending") and not p.metadata.deletion_timestamp]
    assert not live_workers, f"worker pods still running after the run: {live_workers}"

    status = dok(cluster, "status", identifier, "-n", namespace, timeout=60)
    assert status.returncode == 0 and "Succeeded" in status.stdout, status.stdout + status.stderr
    logs = dok(cluster, "logs", identifier, "-n", namespace, timeout=60)
    assert logs.returncode == 0 and identifier in logs.stdout, logs.stderr
    assert "[dok-progress]" not in logs.stdout  # records are for the progress view only
    assert "Job " in logs.stdout and "success TTL" in logs.stdout  # the runner said what it set

    cleaned = dok(cluster, "cleanup", identifier, "-n", namespace, timeout=120)
    assert cleaned.returncode == 0, cleaned.stderr
    wait_gone(cluster, namespace, identifier)


def test_failing_run_keeps_the_failure_ttl(cluster, namespace, image):
    proc = run(cluster, image, namespace, "fail", "--ttl-success", "60", "--ttl-failure", "7200")
    assert proc.returncode == 1, proc.stderr
    assert "teardown-e2e-failure" in proc.stdout  # the failure in full
    identifier = identifier_of(proc.stderr)
    assert "stay until the failure TTL" in proc.stderr
    job = job_of(cluster, namespace, identifier)
    assert job is not None and job.spec.ttl_seconds_after_finished == 7200, job
    assert dok(cluster, "cleanup", identifier, "-n", namespace, timeout=120).returncode == 0
    wait_gone(cluster, namespace, identifier)


def test_rm_leaves_nothing(cluster, namespace, image):
    proc = run(cluster, image, namespace, "ok", "--rm")
    assert proc.returncode == 0, proc.stderr
    identifier = identifier_of(proc.stderr)
    assert f"cleaned up run {identifier}" in proc.stderr
    wait_gone(cluster, namespace, identifier)


def test_oom_killed_worker_is_named_in_the_final_state(cluster, namespace, image):
    from dok.core import DaskOnKubernetesEnvironment
    from dok.launcher import execute

    env = DaskOnKubernetesEnvironment(max_workers=1, namespace=namespace)
    handle = execute(env, image=image["image"], flow_name="e2e-teardown", parameters={"mode": "oom"},
                     kubeconfig=str(cluster.kubeconfig), max_worker_failures=1,
                     worker_resources={"requests": {"cpu": "100m", "memory": "256Mi"},
                                       "limits": {"memory": "384Mi"}})
    started = time.monotonic()
    lines: list[str] = []
    state = handle.wait(timeout=400, cleanup=True, on_line=lines.append)  # the library's --rm
    took = time.monotonic() - started
    assert not state.is_successful(), state
    assert "OOMKilled" in (state.message or ""), f"{state.message}\n" + "\n".join(lines[-30:])
    assert "worker pods that ended early:" in state.message and "-worker-" in state.message, state.message
    print(f"OOM run ended in {took:.1f}s: {state.message}")
    wait_gone(cluster, namespace, handle.identifier)
