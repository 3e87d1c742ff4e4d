"""e2e: nothing with a run's identifier label (Job, job pod, worker pods) remains within 60 s after (`dok run --rm`):
a successful run; a failing task; `dok cancel`; Ctrl-C (SIGINT) of `dok run`; deleting the job pod by
hand (which `dok run` reports as an infrastructure error, exit 3). Each case runs on both worker backends
(`backend` fixture: dok's pods, the dask-kubernetes operator, whose custom resources must go too)."""

from __future__ import annotations

import signal

from e2e import helpers
from e2e.reliability_flows import COMPONENT_LABEL, IDENT_LABEL, Background, dok, flow_file, identifier_of, wait_gone

OK_FLOW = '''
from dok.core import Flow, task

@task
def one():
    return 1

@task
def plus(x):
    return x + 1

with Flow("e2e-cleanup-ok") as flow:
    plus.map([1, 2, 3])
'''

FAILING_FLOW = '''
from dok.core import Flow, task

@task
def explode():
    raise RuntimeError("cleanup test failure")

with Flow("e2e-cleanup-failing") as flow:
    explode()
'''

# Long enough to be interrupted while workers run: 6 tasks of 60 s on up to 2 workers.
SLOW_FLOW = '''
import time
from dok.core import Flow, task

@task
def slow(i):
    time.sleep(60)
    return i

with Flow("e2e-cleanup-slow") as flow:
    slow.map(list(range(6)))
'''


# ---- helpers (kept in this file: Bazel runs each e2e file as its own target) -----------------------------
def running_job_pod(cluster: helpers.Cluster, namespace: str, bg: Background, *, with_workers: bool = True):
    """Wait until the run's job pod is Running (and at least one worker pod exists)."""
    def probe():
        if bg.proc.poll() is not None:
            raise AssertionError(f"dok run ended early ({bg.proc.returncode}): {''.join(bg.err)}")
        ident = bg.identifier
        if not ident:
            return None
        pods = helpers.list_by_label(cluster, "pods", {IDENT_LABEL: ident}, namespace=namespace)
        job = [p for p in pods if (p.metadata.labels or {}).get(COMPONENT_LABEL) == "job"
               and p.status.phase == "Running"]
        workers = [p for p in pods if (p.metadata.labels or {}).get(COMPONENT_LABEL) != "job"]
        if job and (workers or not with_workers):
            return job[0]
        return None
    return helpers.wait_for("the run's job pod (and a worker) running", probe, timeout=300, interval=0.5)


# ---- tests -------------------------------------------------------------------------------------------------
def test_nothing_left_after_success(cluster, namespace, tmp_path, backend):
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, "--max-workers", "2",
               "--backend", backend, "--rm")
    assert proc.returncode == 0
    wait_gone(cluster, namespace, identifier_of(proc.stderr))


def test_nothing_left_after_failing_task(cluster, namespace, tmp_path, backend):
    proc = dok(cluster, "run", flow_file(tmp_path, FAILING_FLOW), "-n", namespace, "--backend", backend, "--rm")
    assert proc.returncode == 1
    assert "cleanup test failure" in proc.stdout
    wait_gone(cluster, namespace, identifier_of(proc.stderr))


def test_nothing_left_after_dok_cancel(cluster, namespace, tmp_path, backend):
    bg = Background(cluster, "run", flow_file(tmp_path, SLOW_FLOW), "-n", namespace, "--max-workers", "2",
                    "--backend", backend)
    try:
        running_job_pod(cluster, namespace, bg)
        cancel = dok(cluster, "cancel", bg.identifier, "-n", namespace, timeout=120)
        assert cancel.returncode == 0
        ended = bg.finish(timeout=120)
        assert ended != 0  # the attached `dok run` saw its run go away
        wait_gone(cluster, namespace, bg.identifier)
    finally:
        bg.kill()


def test_nothing_left_after_ctrl_c(cluster, namespace, tmp_path, backend):
    bg = Background(cluster, "run", flow_file(tmp_path, SLOW_FLOW), "-n", namespace, "--max-workers", "2",
                    "--backend", backend)
    try:
        running_job_pod(cluster, namespace, bg)
        bg.proc.send_signal(signal.SIGINT)
        code = bg.finish(timeout=120)
        assert code == 130
        assert "cancelling run" in "".join(bg.err)
        wait_gone(cluster, namespace, bg.identifier)
    finally:
        bg.kill()


def test_job_pod_deleted_by_hand(cluster, namespace, tmp_path, backend):
    bg = Background(cluster, "run", flow_file(tmp_path, SLOW_FLOW), "-n", namespace, "--max-workers", "2",
                    "--backend", backend)
    try:
        pod = running_job_pod(cluster, namespace, bg)
        cluster.core.delete_namespaced_pod(pod.metadata.name, namespace)
        code = bg.finish(timeout=180)
        assert code == 3
        assert "job pod" in "".join(bg.err) and "delet" in "".join(bg.err)
        wait_gone(cluster, namespace, bg.identifier)
    finally:
        bg.kill()
