"""e2e (results/logs issue, worker logs kept): a line printed by a task on a worker pod is still there after
the run, when every worker pod is gone: the runner copies each worker's log into the job pod's log before it
deletes the pod, and `dok logs ID --workers` shows it (plain `dok logs ID` does not)."""

from __future__ import annotations

import re

from e2e import helpers
from e2e.reliability_flows import dok, flow_file, remaining

PRINTING_FLOW = '''
from dok.core import Flow, task

@task
def shout(x):
    print(f"hello-from-worker-task-{x}", flush=True)
    return x

@task
def total(xs):
    return sum(xs)

with Flow("e2e-worker-logs") as flow:
    total(shout.map([1, 2, 3]))
'''


def test_worker_log_lines_survive_their_pods(cluster, namespace, tmp_path):
    proc = dok(cluster, "run", flow_file(tmp_path, PRINTING_FLOW), "-n", namespace, "--detach", "--max-workers", "2")
    assert proc.returncode == 0, proc.stderr
    identifier = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", identifier)

    def finished():
        st = dok(cluster, "status", identifier, "-n", namespace, timeout=60)
        return st if st.returncode == 0 and "Succeeded" in st.stdout else None

    helpers.wait_for("the detached run to finish", finished, timeout=240, interval=2)
    helpers.wait_for("no worker pod of the run left",
                     lambda: not [n for n in remaining(cluster, namespace, identifier)
                                  if re.fullmatch(r"Pod/.*-worker-\d+", n)],
                     timeout=90, interval=1)

    with_workers = dok(cluster, "logs", identifier, "-n", namespace, "--workers", timeout=60)
    assert with_workers.returncode == 0, with_workers.stderr
    copied = [line for line in with_workers.stdout.splitlines() if line.startswith("[worker ")]
    assert any("hello-from-worker-task-" in line for line in copied), with_workers.stdout
    assert all(re.match(r"\[worker \S+-worker-\d+\] ", line) for line in copied), copied[:5]

    plain = dok(cluster, "logs", identifier, "-n", namespace, timeout=60)
    assert plain.returncode == 0
    assert "hello-from-worker-task-" not in plain.stdout
    assert identifier in plain.stdout

    assert dok(cluster, "cleanup", identifier, "-n", namespace, timeout=120).returncode == 0
