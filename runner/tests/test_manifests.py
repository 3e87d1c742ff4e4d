"""worker_pod_manifest / job_pod_template / names: pure builders."""

from __future__ import annotations

import re

import pytest

from dok.core.labels import run_labels
from dok.runner.manifests import (
    check_worker_pod,
    job_pod_template,
    user_env,
    worker_command,
    worker_pod_manifest,
    worker_pod_name,
)
from dok.runner.worker import parse_args as parse_worker_args

JOB_POD = {
    "metadata": {"name": "dok-fanout-0f8e2d3c-job-x1", "uid": "job-uid-1", "namespace": "ns1"},
    "spec": {
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"pool": "dask"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "dask", "effect": "NoSchedule"}],
        "securityContext": {"runAsUser": 1000, "runAsNonRoot": True, "fsGroup": 2000},
        "serviceAccountName": "dok-runner",
        "containers": [{
            "name": "runner",
            "image": "dok/fanout:abc",
            "env": [
                {"name": "DOK_IDENTIFIER", "value": "0f8e2d3c-aaaa"},
                {"name": "DOK_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "MY_SETTING", "value": "1"},
                {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
                {"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "HOME", "value": "/somewhere"},
            ],
            "envFrom": [{"secretRef": {"name": "bulk"}}],
        }],
    },
}


def build(**kw):
    template = job_pod_template(JOB_POD)
    args = dict(name="dok-fanout-0f8e2d3c-worker-0", namespace="ns1", image="dok/fanout:abc",
                scheduler_address="tcp://10.244.0.9:8786", identifier="0f8e2d3c-aaaa", flow_name="Fan Out",
                template=template, nthreads=2, death_timeout=45)
    args.update(kw)
    return worker_pod_manifest(**args)


def test_identity_labels_and_owner():
    m = build()
    assert m["apiVersion"] == "v1" and m["kind"] == "Pod"
    meta = m["metadata"]
    assert meta["name"] == "dok-fanout-0f8e2d3c-worker-0" and meta["namespace"] == "ns1"
    assert meta["labels"] == run_labels(identifier="0f8e2d3c-aaaa", flow_name="Fan Out", component="worker")
    assert meta["labels"]["app.kubernetes.io/component"] == "worker"
    assert meta["labels"]["dok.dev/identifier"] == "0f8e2d3c-aaaa"
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "dok-fanout-0f8e2d3c-job-x1",
                                        "uid": "job-uid-1", "controller": False, "blockOwnerDeletion": False}]


def test_security_and_lifecycle():
    spec = build()["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert spec["terminationGracePeriodSeconds"] <= 5
    assert "serviceAccountName" not in spec
    pod_ctx = spec["securityContext"]
    assert pod_ctx["runAsNonRoot"] is True and pod_ctx["runAsUser"] == 1000 and pod_ctx["fsGroup"] == 2000
    assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    [c] = spec["containers"]
    ctx = c["securityContext"]
    assert ctx["runAsNonRoot"] and ctx["runAsUser"] == 1000 and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["readOnlyRootFilesystem"] is True
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_root_is_never_inherited():
    pod = {**JOB_POD, "spec": {**JOB_POD["spec"], "securityContext": {"runAsUser": 0}}}
    m = worker_pod_manifest(name="w", namespace="n", image="i", scheduler_address="tcp://1.2.3.4:8786",
                            identifier="id", flow_name="f", template=job_pod_template(pod))
    assert m["spec"]["securityContext"]["runAsUser"] == 1000


def test_inherited_scheduling_and_pull_secrets():
    spec = build()["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "dask"}
    assert spec["tolerations"][0]["key"] == "dedicated"


def test_env_keeps_user_vars_and_secret_refs_only():
    [c] = build()["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MY_SETTING"]["value"] == "1"
    assert env["API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "token"}
    assert "DOK_POD_IP" not in env and "LIMIT" not in env
    assert env["DOK_IDENTIFIER"]["value"] == "0f8e2d3c-aaaa" and env["DOK_WORKER_NAME"]["value"].endswith("worker-0")
    assert env["HOME"]["value"] == "/tmp"
    assert len(c["env"]) == len(env)
    assert c["envFrom"] == [{"secretRef": {"name": "bulk"}}]
    assert [v["name"] for v in user_env(JOB_POD["spec"]["containers"][0]["env"])] == ["MY_SETTING", "API_TOKEN", "HOME"]


def test_command_and_resources():
    [c] = build(resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}})["spec"]["containers"]
    assert c["command"] == ["python", "-m", "dok.runner.worker", "tcp://10.244.0.9:8786",
                            "--name", "dok-fanout-0f8e2d3c-worker-0", "--nthreads", "2", "--local-directory", "/tmp",
                            "--death-timeout", "45s", "--memory-limit", "1073741824"]
    assert c["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    [c] = build()["spec"]["containers"]
    assert "resources" not in c and "--memory-limit" not in c["command"]


def test_worker_command_is_the_dok_worker_entrypoint_and_parses_back():
    from dok.runner.worker import parse_args

    command = worker_command(scheduler_address="tcp://x:1", name="n", nthreads=3, death_timeout=45,
                             memory_limit=2**30)
    assert command[:3] == ["python", "-m", "dok.runner.worker"]
    args = parse_args(command[3:])
    assert (args.scheduler_address, args.name, args.nthreads, args.death_timeout, args.memory_limit,
            args.local_directory) == ("tcp://x:1", "n", 3, 45.0, 2**30, "/tmp")


@pytest.mark.parametrize("flow,ident", [
    ("fanout", "0f8e2d3c-1111-2222-3333-444455556666"),
    ("A Very Long Flow Name With Spaces And CAPS that goes on and on and on forever", "abc"),
    ("___", "XYZ-123"),
])
def test_names_are_dns_labels_within_63(flow, ident):
    for n in (0, 7, 12345):
        name = worker_pod_name(flow_name=flow, identifier=ident, number=n)
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name), name
        assert name.startswith("dok-") and name.endswith(f"-worker-{n}")
    assert worker_pod_name(flow_name="fanout", identifier="0f8e2d3c-1111", number=3) == "dok-fanout-0f8e2d3c-worker-3"


def test_worker_drains_before_it_stops():
    pod = build()
    container = pod["spec"]["containers"][0]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["python", "-m", "dok.runner.drain"]
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["DOK_SCHEDULER_ADDRESS"].startswith("tcp://")
    assert env["DOK_WORKER_NAME"] == pod["metadata"]["name"]
    assert 1 <= float(env["DOK_DRAIN_TIMEOUT"]) < pod["spec"]["terminationGracePeriodSeconds"]


def test_a_pod_of_several_worker_processes_shares_its_resources_between_them():
    pod = worker_pod_manifest(name="dok-f-1-worker-0", namespace="n", image="i", scheduler_address="tcp://1.2.3.4:8786",
                              identifier="id", flow_name="f", template=job_pod_template(JOB_POD), processes=4,
                              resources={"limits": {"cpu": "4", "memory": "4Gi", "nvidia.com/gpu": "2"}})
    [c] = pod["spec"]["containers"]
    args = parse_worker_args(c["command"][3:])
    assert (args.processes, args.nthreads, args.memory_limit, args.resources) == (4, 1, 2**30, (("GPU", 0.5),))
    env = {v["name"]: v.get("value") for v in c["env"]}
    assert env["DOK_WORKER_PROCESSES"] == "4"  # the preStop drain retires all four
    assert c["resources"]["limits"]["memory"] == "4Gi"  # the pod's own limit is unchanged
    assert check_worker_pod(pod, processes=4) == {"GPU": 0.5}  # what each Dask worker offers tasks
    one = build()["spec"]["containers"][0]  # one worker per pod: no --processes, no DOK_WORKER_PROCESSES
    assert "--processes" not in one["command"] and "DOK_WORKER_PROCESSES" not in {v["name"] for v in one["env"]}
