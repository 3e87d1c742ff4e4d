"""e2e: with no `-n`, every `dok` command uses the kubeconfig context's namespace (issue 9's namespace bug).

The environment used to default `namespace` to "default", so `dok run` (no `-n`) put the run in `default`
while `dok list`, `dok status`, `dok cleanup` (no environment) looked in the context's namespace and did not
find it. Here the kubeconfig is a copy of the cluster's whose current context names a fresh namespace that
is not `default` (made by the `namespace` fixture, deleted at the end): `dok run --detach` (no `-n`) puts
the Job there, and `dok list`, `dok status ID`, `dok cleanup ID` (no `-n`) all find the run.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from e2e import helpers
from e2e.reliability_flows import dok, dok_env, flow_file, remaining, wait_gone

FLOW = '''
from dok.core import Flow, Parameter, task

@task
def numbers(n):
    return list(range(int(n)))

@task
def total(xs):
    return sum(xs)

with Flow("e2e-namespace") as flow:
    n = Parameter("n", default=4)
    total(numbers(n))
'''


def context_kubeconfig(cluster: helpers.Cluster, namespace: str, path: Path) -> Path:
    """A copy of the cluster's kubeconfig whose current context's namespace is `namespace`."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    current = config["current-context"]
    for entry in config["contexts"]:
        if entry["name"] == current:
            entry["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(config))
    return path


def test_commands_without_namespace_use_the_context_namespace(cluster: helpers.Cluster, namespace: str,
                                                               tmp_path: Path) -> None:
    assert namespace != "default"
    env = dok_env(cluster, KUBECONFIG=str(context_kubeconfig(cluster, namespace, tmp_path / "kubeconfig")))
    run = dok(cluster, "run", flow_file(tmp_path, FLOW), "--detach", env=env)
    assert run.returncode == 0, run.stderr
    identifier = run.stdout.strip().splitlines()[-1]
    assert f"in namespace {namespace}" in run.stderr
    try:
        assert remaining(cluster, namespace, identifier), f"run {identifier} is not in {namespace}"
        assert not remaining(cluster, "default", identifier), f"run {identifier} landed in default"

        listed = dok(cluster, "list", env=env)
        assert listed.returncode == 0 and identifier in listed.stdout, listed.stdout + listed.stderr

        status = dok(cluster, "status", identifier, env=env)
        assert status.returncode == 0, status.stderr
        assert f"run:        {identifier}" in status.stdout and f"namespace:  {namespace}" in status.stdout

        cleaned = dok(cluster, "cleanup", identifier, env=env)
        assert cleaned.returncode == 0 and f"cleaned up run {identifier}" in cleaned.stdout, cleaned.stderr
        wait_gone(cluster, namespace, identifier)
    finally:
        helpers.delete_by_label(cluster, "jobs", {"dok.dev/identifier": identifier}, namespace="default")
