"""e2e: dok as a library, the seed's sequence without the CLI:

    env = DaskOnKubernetesEnvironment(...); env = env.build(flow); handle = env.execute(); handle.wait()

The flow is defined inside the test (so cloudpickle ships its functions by value). The returned State
carries the flow's result; an environment variable declared with `secret_env` (a reference to a Kubernetes
Secret, resolved by the kubelet) reaches the task on a worker pod; nothing with the run's identifier remains
afterwards.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from e2e import helpers

IDENT_LABEL = "dok.dev/identifier"


def _remaining(cluster, namespace, identifier):
    sel = {IDENT_LABEL: identifier}
    return (helpers.list_by_label(cluster, "jobs", sel, namespace=namespace)
            + helpers.list_by_label(cluster, "pods", sel, namespace=namespace))


def test_build_execute_wait_from_python(cluster, namespace, monkeypatch):
    from dok.core import DaskOnKubernetesEnvironment, Flow, Parameter, task

    if "DOK_BUILD_CA_BUNDLE" not in os.environ and Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        monkeypatch.setenv("DOK_BUILD_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")

    @task
    def numbers(n):
        return list(range(int(n)))

    @task
    def square(x):
        return x * x

    @task
    def total(xs):
        return sum(xs)

    @task
    def greeting(xs):  # runs on a worker pod, after the squares
        return os.environ.get("E2E_GREETING", "missing")

    with Flow("e2e-library") as flow:
        n = Parameter("n", default=3)
        squares = square.map(numbers(n))
        total(squares)
        greeting(squares)

    greeting_value = "hello-" + secrets.token_hex(8)
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "e2e-lib"},
                                                      "stringData": {"greeting": greeting_value}})

    env = DaskOnKubernetesEnvironment(base_image=os.environ.get("DOK_BASE_IMAGE", "dok-base:bookworm-py3.11"),
                                      max_workers=2, namespace=namespace,
                                      secret_env={"E2E_GREETING": "e2e-lib:greeting"})
    env = env.build(flow)
    assert env.image
    lines: list[str] = []
    handle = env.execute(parameters={"n": 6})
    assert handle.identifier
    state = handle.wait(on_line=lines.append, cleanup=True)  # the library's --rm
    assert state.is_successful(), state
    assert "55" in str(state.result)  # 0+1+4+9+16+25
    assert greeting_value in str(state.result), state.result  # the Secret's value, read on a worker
    assert any(handle.identifier in line for line in lines)  # the job pod's log was streamed

    deadline = time.monotonic() + 60
    while _remaining(cluster, namespace, handle.identifier) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _remaining(cluster, namespace, handle.identifier)
