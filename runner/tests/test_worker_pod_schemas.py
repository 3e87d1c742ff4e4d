"""Every worker pod the runner writes conforms to the OpenAPI schemas of Kubernetes 1.30 and of the newest
release `kubernetes-validate` knows (strict), passes Pod Security Admission "restricted", and its
`dask worker` command follows the container's resources."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kube_schema import SCHEMA_VERSIONS, schema_errors

from dok.core.podsecurity import restricted_violations
from dok.core.resources import DEFAULT_WORKER_RESOURCES
from dok.core.runspec import RunSpec
from dok.runner.config import RunnerConfig
from dok.runner.manifests import job_pod_template, worker_pod_manifest

ID = "0f8e2d3c-aaaa"

# A job pod as the runner reads it back from the API: the bare minimum, and one with every inherited field.
BARE_JOB_POD: dict[str, Any] = {
    "metadata": {"name": "dok-fanout-0f8e2d3c-x1", "uid": "11111111-2222-3333-4444-555555555555"},
    "spec": {"containers": [{"name": "runner", "image": "dok/fanout:abc",
                             "env": [{"name": "DOK_IDENTIFIER", "value": ID}]}]},
}
FULL_JOB_POD: dict[str, Any] = {
    "metadata": {"name": "dok-fanout-0f8e2d3c-x1", "uid": "11111111-2222-3333-4444-555555555555"},
    "spec": {
        "imagePullSecrets": [{"name": "regcred"}, {"name": "other.creds"}],
        "nodeSelector": {"pool": "dask"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "dask", "effect": "NoSchedule"},
                        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "fsGroup": 2000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "serviceAccountName": "dok-runner",
        "containers": [{
            "name": "runner",
            "image": "dok/fanout:abc",
            "env": [
                {"name": "DOK_IDENTIFIER", "value": ID},
                {"name": "DOK_POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}},
                {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}}},
            ],
            "envFrom": [{"secretRef": {"name": "bulk"}}, {"configMapRef": {"name": "more"}}],
        }],
    },
}
RESOURCES: dict[str, dict[str, dict[str, str]] | None] = {
    "none": None,
    "empty": {},
    "default": {kind: dict(q) for kind, q in DEFAULT_WORKER_RESOURCES.items()},
    "cpu-and-memory": {"requests": {"cpu": "1500m", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "requests-only": {"requests": {"cpu": "250m"}},
}


def build(job_pod: dict[str, Any], resources: dict[str, Any] | None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(name="dok-fanout-0f8e2d3c-worker-0", namespace="ns1", image="dok/fanout:abc",
                                scheduler_address="tcp://10.244.0.9:8786", identifier=ID, flow_name="Fan Out",
                                template=job_pod_template(job_pod), death_timeout=45, resources=resources,
                                image_pull_policy="Always")
    args.update(kw)
    return worker_pod_manifest(**args)


CASES = [(pod_name, res) for pod_name in ("bare", "full") for res in sorted(RESOURCES)]


def _pod(name: str) -> dict[str, Any]:
    return {"bare": BARE_JOB_POD, "full": FULL_JOB_POD}[name]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("job_pod,resources", CASES)
def test_worker_pod_conforms_to_the_schemas(job_pod: str, resources: str, version: str) -> None:
    assert schema_errors(build(_pod(job_pod), RESOURCES[resources]), version) == []


@pytest.mark.parametrize("job_pod,resources", CASES)
def test_worker_pod_is_admitted_by_restricted(job_pod: str, resources: str) -> None:
    assert restricted_violations(build(_pod(job_pod), RESOURCES[resources])["spec"]) == []


def test_worker_pod_stays_restricted_when_the_job_pod_is_not() -> None:
    """Workers copy the job pod's securityContext: a root, unconfined one is not carried over."""
    job_pod = copy.deepcopy(FULL_JOB_POD)
    job_pod["spec"]["securityContext"].update(runAsUser=0, runAsNonRoot=False, seccompProfile={"type": "Unconfined"})
    assert restricted_violations(job_pod["spec"])  # the input really is bad
    assert restricted_violations(build(job_pod, None)["spec"]) == []


def test_full_template_really_is_inherited() -> None:
    spec = build(FULL_JOB_POD, RESOURCES["default"])["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other.creds"}]
    assert len(spec["tolerations"]) == 2 and spec["nodeSelector"] == {"pool": "dask"}
    [c] = spec["containers"]
    assert c["envFrom"] and {"DB_PASSWORD", "REGION", "LOG_LEVEL"} <= {e["name"] for e in c["env"]}
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_schema_check_refuses_a_broken_worker_pod(version: str) -> None:
    pod = build(FULL_JOB_POD, RESOURCES["default"])
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["cmd"] = ["true"]
    assert "'cmd' was unexpected" in schema_errors(broken, version)[0]
    broken = copy.deepcopy(pod)
    broken["metadata"]["ownerReferences"][0]["controller"] = "false"
    assert schema_errors(broken, version)[0].startswith("metadata.ownerReferences.0.controller: ")
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["resources"]["request"] = {"cpu": "1"}
    assert "'request' was unexpected" in schema_errors(broken, version)[0]


# -- dask worker follows the container ---------------------------------------------------------------------
def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


@pytest.mark.parametrize("resources,threads,memory", [
    ("none", "1", None),
    ("empty", "1", None),
    ("default", "1", str(2 * 2**30)),            # 100m request -> 1 thread; 2Gi limit
    ("cpu-and-memory", "2", str(4 * 2**30)),     # the CPU limit (2) wins over the request (1.5)
    ("requests-only", "1", None),                # ceil(0.25) = 1; no memory limit: dask's own default
])
def test_dask_worker_follows_the_container(resources: str, threads: str, memory: str | None) -> None:
    [c] = build(BARE_JOB_POD, RESOURCES[resources])["spec"]["containers"]
    assert _flag(c["command"], "--nthreads") == threads
    assert _flag(c["command"], "--memory-limit") == memory


def test_explicit_nthreads_wins() -> None:
    [c] = build(BARE_JOB_POD, RESOURCES["cpu-and-memory"], nthreads=7)["spec"]["containers"]
    assert _flag(c["command"], "--nthreads") == "7"


@pytest.mark.parametrize("settings,threads", [
    ({}, 1),                                                    # the default: 100m CPU request
    ({"worker_resources": {"requests": {"cpu": "3"}}}, 3),
    ({"worker_resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2500m"}}}, 3),
    ({"worker_nthreads": 5}, 5),
])
def test_runner_config_and_manifest_agree_on_threads(settings: dict[str, Any], threads: int) -> None:
    """The runner sizes Adaptive by `RunnerConfig.nthreads`; the pods it starts have that many threads."""
    pod_facts = {"DOK_POD_NAME": "p", "DOK_POD_UID": "u", "DOK_POD_IP": "10.0.0.1"}
    spec = RunSpec(image="dok/fanout:abc", namespace="ns1", identifier=ID, **settings)
    c = RunnerConfig.resolve(dict(pod_facts, **spec.to_env()))
    [container] = build(BARE_JOB_POD, c.spec.worker_resources, nthreads=c.nthreads)["spec"]["containers"]
    assert c.nthreads == threads
    assert _flag(container["command"], "--nthreads") == str(threads)
    assert container["resources"] == spec.worker_resources


# -- pod settings and worker templates ------------------------------------------------------------------------
from dok.core.podtemplate import PodTemplateError, pod_template  # noqa: E402
from dok.runner.exceptions import ConfigError  # noqa: E402
from dok.runner.manifests import WorkerPodSettings, check_worker_pod  # noqa: E402

GPU = {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}, "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}}
WORKER_TEMPLATE = pod_template({
    "metadata": {"labels": {"team": "ml"}, "annotations": {"example.com/note": "x"}},
    "spec": {"volumes": [{"name": "data", "emptyDir": {}}],
             "containers": [{"name": "worker", "env": [{"name": "FROM_TEMPLATE", "value": "yes"}],
                             "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                             "resources": {"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "2"}}}]},
}, setting="worker_template")
POD_SETTINGS: dict[str, WorkerPodSettings] = {
    "default": WorkerPodSettings(),
    "placed": WorkerPodSettings(node_selector={"pool": "spot"}, tolerations=({"key": "spot", "operator": "Exists"},),
                                affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                                    {"weight": 1, "preference": {"matchExpressions": [
                                        {"key": "spot", "operator": "Exists"}]}}]}},
                                labels={"team": "ml"}, annotations={"a.example.com/b": "c"}, priority_class="low"),
    "nothing-inherited": WorkerPodSettings(node_selector={}, tolerations=()),
    "template": WorkerPodSettings(template=WORKER_TEMPLATE),
}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("settings", sorted(POD_SETTINGS))
def test_worker_pods_with_pod_settings_conform_and_are_restricted(settings: str, version: str) -> None:
    resources = RESOURCES["default"] if settings == "template" else GPU  # the template brings its own GPUs
    pod = build(FULL_JOB_POD, resources, pod=POD_SETTINGS[settings])
    assert schema_errors(pod, version) == []
    assert restricted_violations(pod["spec"]) == []


def test_worker_settings_replace_what_the_job_pod_gives() -> None:
    spec = build(FULL_JOB_POD, None, pod=POD_SETTINGS["placed"])["spec"]
    assert spec["nodeSelector"] == {"pool": "spot"} and [t["key"] for t in spec["tolerations"]] == ["spot"]
    assert spec["priorityClassName"] == "low" and "nodeAffinity" in spec["affinity"]
    bare = build(FULL_JOB_POD, None, pod=POD_SETTINGS["nothing-inherited"])["spec"]
    assert "nodeSelector" not in bare and "tolerations" not in bare


def test_worker_template_and_gpus_reach_the_pod_and_dask() -> None:
    pod = build(FULL_JOB_POD, RESOURCES["default"], pod=POD_SETTINGS["template"])
    c = pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"]["team"] == "ml" and pod["metadata"]["ownerReferences"]
    assert {"name": "FROM_TEMPLATE", "value": "yes"} in c["env"]
    assert _flag(c["command"], "--resources") == "GPU=2"  # the template's GPU count, merged before the command
    assert check_worker_pod(pod) == {"GPU": 2.0}
    assert _flag(build(FULL_JOB_POD, GPU)["spec"]["containers"][0]["command"], "--resources") == "GPU=1"
    assert "--resources" not in build(FULL_JOB_POD, None)["spec"]["containers"][0]["command"]
    with pytest.raises(PodTemplateError, match="nvidia.com/gpu is '1' in dok's pod and '2' in the template"):
        build(FULL_JOB_POD, GPU, pod=POD_SETTINGS["template"])  # two GPU counts: an error, not a guess


def test_a_worker_template_that_breaks_restricted_is_refused_unless_loosened() -> None:
    sidecar = pod_template({"containers": [{"name": "side", "image": "busybox:1"}]}, setting="worker_template")
    with pytest.raises(ConfigError, match="allowPrivilegeEscalation"):
        check_worker_pod(build(BARE_JOB_POD, None, pod=WorkerPodSettings(template=sidecar)))
    loose = pod_template({"metadata": {"annotations": {"dok.dev/security-context": "template"}},
                          "spec": {"containers": [{"name": "side", "image": "busybox:1"}]}}, setting="worker_template")
    assert check_worker_pod(build(BARE_JOB_POD, None, pod=WorkerPodSettings(template=loose)), loose=True) == {}


def test_worker_pod_settings_come_from_the_run_spec() -> None:
    spec = RunSpec(worker_node_selector={"a": "b"}, labels={"team": "ml"}, priority_class="low",
                   worker_template={"containers": [{"env": [{"name": "X", "value": "1"}]}]})
    again = RunSpec.from_env(spec.to_env())   # the runner reads them from the job pod's environment
    settings = WorkerPodSettings.of(again)
    assert settings.node_selector == {"a": "b"} and settings.labels == {"team": "ml"}
    assert settings.priority_class == "low" and settings.template == spec.worker_template
