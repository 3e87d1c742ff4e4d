"""e2e: the job pod's own worker (`--job-worker-threads N`, issue 10's latency) on the real cluster.

- a one-task flow ends on the job pod's worker: the right result, no worker pod is ever created, nothing
  left after `--rm`;
- a fan-out starts on it, worker pods join, it stops taking tasks and retires with its results moved: the
  right total, every task recorded once as a success.
"""

from __future__ import annotations

import re

import pytest

from e2e import helpers
from e2e.reliability_flows import IDENT_LABEL, build_image_cli, dok, flow_file, identifier_of, wait_gone

FLOW = '''
from dok.core import Flow, Parameter, task

@task
def square(x, pause):
    import time
    time.sleep(pause)
    return x * x

@task
def total(xs):
    return sum(xs)

with Flow("e2e-job-worker") as flow:
    pause = Parameter("pause", default=0.0)
    total(square.map(list(range(12)), pause=pause))
'''

ONE = '''
from dok.core import Flow, task

@task
def answer():
    return 42

with Flow("e2e-job-worker-one") as flow:
    answer()
'''


@pytest.fixture(scope="module")
def images(cluster: helpers.Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    out = {}
    for key, source in (("one", ONE), ("fan", FLOW)):
        path = flow_file(tmp_path_factory.mktemp(key), source)
        out[key] = {"path": path, "image": build_image_cli(cluster, path)}
    return out


def test_a_one_task_flow_ends_in_the_job_pod_without_a_worker_pod(cluster, namespace, images):
    one = images["one"]
    proc = dok(cluster, "run", one["path"], "--image", one["image"], "-n", namespace, "--max-workers", "2",
               "--job-worker-threads", "1", "--rm", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "{'answer': 42}" in proc.stdout + proc.stderr
    identifier = identifier_of(proc.stderr)
    out = proc.stdout + proc.stderr
    assert "the job pod's own worker joined" in out, out
    assert "workers: 0 requested, 0 joined" in out, out  # the runner's summary: no pod was ever asked for
    wait_gone(cluster, namespace, identifier)
    assert not helpers.list_by_label(cluster, "pods", {IDENT_LABEL: identifier}, namespace=namespace)


def test_a_fan_out_starts_in_the_job_pod_then_moves_to_worker_pods(cluster, namespace, images):
    fan = images["fan"]
    proc = dok(cluster, "run", fan["path"], "--image", fan["image"], "-n", namespace, "--max-workers", "2",
               "--job-worker-threads", "1", "--param", "pause=1.5", "--rm", timeout=420)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"'total': {sum(x * x for x in range(12))}" in out, out
    assert "the job pod's own worker joined" in out and "takes no new tasks" in out, out
    assert "retired, its results moved to the worker pods" in out, out
    assert "FAILED" not in out, out
    assert re.search(r"square: 12 done \(12 success\)", out), out  # each task once, as a success
    wait_gone(cluster, namespace, identifier_of(proc.stderr))
