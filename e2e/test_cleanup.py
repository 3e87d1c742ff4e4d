"""e2e: nothing with a run's identifier label (Job, job pod, worker pods) remains within 60 s after:
a successful run; a failing task; `dok cancel`; Ctrl-C (SIGINT) of `dok run`; deleting the job pod by
hand (which `dok run` reports as an infrastructure error, exit 3)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from e2e import helpers

IDENT_LABEL = "dok.dev/identifier"
COMPONENT_LABEL = "app.kubernetes.io/component"
RUN_LINE = re.compile(r"\[dok\] run ([0-9a-f-]{36}):")

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
def dok_env(cluster: helpers.Cluster) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DOK_BASE_IMAGE", "dok-base:bookworm-py3.11")
    if "DOK_BUILD_CA_BUNDLE" not in env and Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        env["DOK_BUILD_CA_BUNDLE"] = "/etc/ssl/certs/ca-certificates.crt"
    env.pop("BUILD_WORKING_DIRECTORY", None)
    env.pop("DOK_WORKING_DIRECTORY", None)
    return env


def dok(cluster: helpers.Cluster, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "dok.launcher", *args], env=dok_env(cluster),
                          capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(f"$ dok {' '.join(args)}  -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n")
    return proc


class Background:
    """`dok run` in the background, its output collected by threads; `.identifier` once it printed it."""

    def __init__(self, cluster: helpers.Cluster, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "dok.launcher", *args], env=dok_env(cluster),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: k.extend(iter(s.readline, "")), daemon=True).start()

    @property
    def identifier(self) -> str | None:
        match = RUN_LINE.search("".join(self.err))
        return match.group(1) if match else None

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        time.sleep(0.2)
        sys.stderr.write(f"background dok -> {self.proc.returncode}\n{''.join(self.out)}\n{''.join(self.err)}\n")
        return code


def flow_file(tmp_path: Path, source: str, name: str = "flow.py") -> str:
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def identifier_of(text: str) -> str:
    match = RUN_LINE.search(text)
    assert match, f"no '[dok] run <id>:' line in:\n{text}"
    return match.group(1)


def remaining(cluster: helpers.Cluster, namespace: str, identifier: str) -> list[str]:
    sel = {IDENT_LABEL: identifier}
    return ([f"job/{j.metadata.name}" for j in helpers.list_by_label(cluster, "jobs", sel, namespace=namespace)]
            + [f"pod/{p.metadata.name}" for p in helpers.list_by_label(cluster, "pods", sel, namespace=namespace)])


def wait_gone(cluster: helpers.Cluster, namespace: str, identifier: str, timeout: float = 60.0) -> float:
    start = time.monotonic()
    left: list[str] = []
    while time.monotonic() - start < timeout:
        left = remaining(cluster, namespace, identifier)
        if not left:
            sys.stderr.write(f"run {identifier}: nothing left after {time.monotonic() - start:.1f} s\n")
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"still there {timeout:g} s after the run ended: {left}")


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
def test_nothing_left_after_success(cluster, namespace, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, OK_FLOW), "-n", namespace, "--max-workers", "2")
    assert proc.returncode == 0
    wait_gone(cluster, namespace, identifier_of(proc.stderr))


def test_nothing_left_after_failing_task(cluster, namespace, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, FAILING_FLOW), "-n", namespace)
    assert proc.returncode == 1
    assert "cleanup test failure" in proc.stdout
    wait_gone(cluster, namespace, identifier_of(proc.stderr))


def test_nothing_left_after_dok_cancel(cluster, namespace, tmp_path):
    bg = Background(cluster, "run", flow_file(tmp_path, SLOW_FLOW), "-n", namespace, "--max-workers", "2")
    try:
        running_job_pod(cluster, namespace, bg)
        cancel = dok(cluster, "cancel", bg.identifier, "-n", namespace, timeout=120)
        assert cancel.returncode == 0
        ended = bg.finish(timeout=120)
        assert ended != 0  # the attached `dok run` saw its run go away
        wait_gone(cluster, namespace, bg.identifier)
    finally:
        if bg.proc.poll() is None:
            bg.proc.kill()


def test_nothing_left_after_ctrl_c(cluster, namespace, tmp_path):
    bg = Background(cluster, "run", flow_file(tmp_path, SLOW_FLOW), "-n", namespace, "--max-workers", "2")
    try:
        running_job_pod(cluster, namespace, bg)
        bg.proc.send_signal(signal.SIGINT)
        code = bg.finish(timeout=120)
        assert code == 130
        assert "cancelling run" in "".join(bg.err)
        wait_gone(cluster, namespace, bg.identifier)
    finally:
        if bg.proc.poll() is None:
            bg.proc.kill()


def test_job_pod_deleted_by_hand(cluster, namespace, tmp_path):
    bg = Background(cluster, "run", flow_file(tmp_path, SLOW_FLOW), "-n", namespace, "--max-workers", "2")
    try:
        pod = running_job_pod(cluster, namespace, bg)
        cluster.core.delete_namespaced_pod(pod.metadata.name, namespace)
        code = bg.finish(timeout=180)
        assert code == 3
        assert "job pod" in "".join(bg.err) and "delet" in "".join(bg.err)
        wait_gone(cluster, namespace, bg.identifier)
    finally:
        if bg.proc.poll() is None:
            bg.proc.kill()
