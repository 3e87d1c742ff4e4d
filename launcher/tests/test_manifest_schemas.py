"""Every manifest the launcher writes conforms to the OpenAPI schemas of Kubernetes 1.30 and of the newest
release `kubernetes-validate` knows (strict: unknown fields are errors), and its pod passes Pod Security
Admission "restricted". No cluster: the schemas ship with the package."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kube_schema import SCHEMA_VERSIONS, schema_errors

from dok.core.podsecurity import restricted_violations
from dok.core.runspec import RunSpec
from dok.launcher import manifests as m
from dok.launcher.exceptions import ConfigError, UsageError

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
NS = "team-a"

# Every optional Job field set at once, and each on its own (the variants the launcher can produce).
EVERYTHING: dict[str, Any] = {
    "active_deadline_seconds": 3600,
    "ttl_seconds_after_failure": 120,
    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "worker_resources": {"requests": {"cpu": "1"}, "limits": {"memory": "4Gi"}},
    "worker_nthreads": 2,
    "max_worker_failures": 3,
    "node_selector": {"pool": "dask", "kubernetes.io/arch": "amd64"},
    "tolerations": ({"key": "dedicated", "operator": "Equal", "value": "dask", "effect": "NoSchedule"},
                    {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}),
    "image_pull_secrets": ("regcred", "other.creds"),
    "secret_env": {"DB_PASSWORD": "db-creds:password", "API_TOKEN": "api/token"},
    "service_account_name": "custom-runner",
    "image_pull_policy": "Always",
    "termination_grace_period_seconds": 0,
    "scale_idle_wait": 10,
    "parameters": {"n": 10, "names": ["a", "b"], "nested": {"x": 1.5}},
    "worker_node_selector": {"pool": "spot"},
    "worker_tolerations": ({"key": "spot", "operator": "Exists", "effect": "NoSchedule"},),
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}]}}},
    "worker_affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                          "labelSelector": {"matchLabels": {"team": "ml"}}}}]}},
    "labels": {"team": "ml", "example.com/cost-center": "42"},
    "annotations": {"example.com/owner": "data team"},
    "priority_class": "high-priority",
    "job_template": {"metadata": {"labels": {"from": "template"}},
                     "spec": {"volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
                              "containers": [{"name": "runner", "env": [{"name": "FROM_TEMPLATE", "value": "1"}],
                                              "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
                                             {"name": "sidecar", "image": "busybox:1",
                                              "securityContext": {"allowPrivilegeEscalation": False,
                                                                  "capabilities": {"drop": ["ALL"]}}}]}},
    "worker_template": "containers:\n- name: worker\n  env: [{name: W, value: '1'}]\n",
}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything": EVERYTHING,
    "no-ttl": {"ttl_seconds_after_failure": None},
    "no-resources": {"resources": {}, "worker_resources": {}},
    **{name: {name: value} for name, value in EVERYTHING.items()},
}


def spec(**kw: Any) -> RunSpec:
    base: dict[str, Any] = dict(identifier=ID, flow_name="Fan Out!", namespace=NS, image="localhost:5000/fanout:abc",
                                max_workers=3)
    base.update(kw)
    return RunSpec(**base)


def everything_the_launcher_writes(settings: dict[str, Any]) -> list[dict[str, Any]]:
    return [m.job_manifest(spec(**settings)), m.service_account_manifest(NS), m.role_manifest(NS),
            m.role_binding_manifest(NS)]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_manifests_conform_to_the_schemas(variant: str, version: str) -> None:
    for manifest in everything_the_launcher_writes(VARIANTS[variant]):
        assert schema_errors(manifest, version) == [], manifest["kind"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_job_pod_is_admitted_by_restricted(variant: str) -> None:
    template = m.job_manifest(spec(**VARIANTS[variant]))["spec"]["template"]
    assert restricted_violations(template["spec"], annotations=template["metadata"].get("annotations")) == []


def test_the_pod_settings_really_land_in_the_job_pod() -> None:
    template = m.job_manifest(spec(**EVERYTHING))["spec"]["template"]
    pod = template["spec"]
    assert template["metadata"]["labels"]["team"] == "ml" and template["metadata"]["labels"]["from"] == "template"
    assert template["metadata"]["annotations"] == {m.SAFE_TO_EVICT_ANNOTATION: "false",
                                                   "example.com/owner": "data team"}
    assert pod["priorityClassName"] == "high-priority" and "nodeAffinity" in pod["affinity"]
    assert [c["name"] for c in pod["containers"]] == ["runner", "sidecar"]
    assert pod["containers"][0]["env"][-1] == {"name": "FROM_TEMPLATE", "value": "1"}
    assert pod["containers"][0]["command"] == list(m.RUNNER_COMMAND)
    assert {"DOK_WORKER_TEMPLATE", "DOK_WORKER_NODE_SELECTOR", "DOK_LABELS"} <= {
        e["name"] for e in pod["containers"][0]["env"]}


@pytest.mark.parametrize("template,words", [
    ({"containers": [{"name": "runner", "command": ["sh"]}]}, "spec.containers[runner].command is set by dok"),
    ({"metadata": {"labels": {"app.kubernetes.io/component": "mine"}}, "spec": {}},
     "metadata.labels.app.kubernetes.io/component"),
    ({"hostNetwork": True}, "would break Pod Security Admission 'restricted': spec.hostNetwork"),
    ({"containers": [{"name": "side", "image": "busybox:1"}]}, "restricted"),
])
def test_job_templates_that_break_dok_rules_are_refused(template: dict[str, Any], words: str) -> None:
    with pytest.raises(UsageError) as info:
        m.job_manifest(spec(job_template=template))
    assert words in info.value.message, info.value.message


def test_labels_must_not_change_dok_labels() -> None:
    with pytest.raises(UsageError, match="dok.dev/identifier"):
        m.job_manifest(spec(labels={"dok.dev/identifier": "x"}))


def test_a_loosened_job_template_skips_the_restricted_check() -> None:
    template = {"metadata": {"annotations": {"dok.dev/security-context": "template"}},
                "spec": {"securityContext": {"runAsNonRoot": False, "runAsUser": 0}}}
    pod = m.job_manifest(spec(job_template=template))["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 0
    assert restricted_violations(pod["spec"]) != []
    for version in SCHEMA_VERSIONS:
        assert schema_errors(m.job_manifest(spec(job_template=template)), version) == []


def test_the_variants_really_differ() -> None:
    """The optional fields show up in the manifests checked above (else the schema check proves little)."""
    job = m.job_manifest(spec(**EVERYTHING))
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 3600 and job["spec"]["ttlSecondsAfterFinished"] == 120
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other.creds"}]
    assert pod["nodeSelector"]["pool"] == "dask" and len(pod["tolerations"]) == 2
    assert pod["serviceAccountName"] == "custom-runner"
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    secrets = [e for e in pod["containers"][0]["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert {e["name"] for e in secrets} == {"DB_PASSWORD", "API_TOKEN"}


# -- the checks catch what they should (a check that cannot fail proves nothing) ----------------------------
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_schema_check_refuses_a_broken_job(version: str) -> None:
    good = m.job_manifest(spec(**EVERYTHING))
    assert schema_errors(good, version) == []

    typo = copy.deepcopy(good)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy "] = "Always"
    assert "'imagePullPolicy ' was unexpected" in schema_errors(typo, version)[0]

    misplaced = copy.deepcopy(good)  # a pod-level field put on the Job spec
    misplaced["spec"]["restartPolicy"] = "Never"
    assert "'restartPolicy' was unexpected" in schema_errors(misplaced, version)[0]

    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["backoffLimit"] = "0"
    assert schema_errors(wrong_type, version)[0].startswith("spec.backoffLimit: ")

    bad_env = copy.deepcopy(good)
    bad_env["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "N", "value": 1})
    assert schema_errors(bad_env, version)


def test_schema_check_refuses_broken_rbac() -> None:
    role = m.role_manifest(NS)
    role["rules"][0]["verb"] = ["get"]
    binding = m.role_binding_manifest(NS)
    del binding["roleRef"]["kind"]
    for version in SCHEMA_VERSIONS:
        assert "'verb' was unexpected" in schema_errors(role, version)[0]
        assert "'kind' is a required property" in schema_errors(binding, version)[0]


def test_job_manifest_refuses_a_pod_that_restricted_would_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher checks its own pod before sending it: a regression in the security policy is an
    internal error naming the field, not a Job the namespace's admission refuses (or, worse, admits)."""
    broken = m.restricted_container_security_context()
    broken["allowPrivilegeEscalation"] = True
    monkeypatch.setattr(m, "restricted_container_security_context", lambda: dict(broken))
    with pytest.raises(ConfigError) as info:
        m.job_manifest(spec())
    assert "allowPrivilegeEscalation: must be false" in str(info.value.message)


# -- limits no schema states ------------------------------------------------------------------------------
def _env_string_bytes(job: dict[str, Any]) -> int:
    return max(len(f"{e['name']}={e.get('value', '')}".encode()) + 1
               for e in job["spec"]["template"]["spec"]["containers"][0]["env"])


def test_parameters_that_fit_keep_env_and_annotations_within_limits() -> None:
    """Just under the limit: every env string fits Linux's MAX_ARG_STRLEN (else the container fails with
    E2BIG), and all annotations together stay under Kubernetes' 256 KiB."""
    filler = m.MAX_ENV_STRING_BYTES - len('DOK_PARAMETERS={"x": ""}') - 1
    job = m.job_manifest(spec(parameters={"x": "a" * filler}))
    assert _env_string_bytes(job) == m.MAX_ENV_STRING_BYTES
    annotations = job["metadata"]["annotations"]
    assert sum(len(k) + len(v) for k, v in annotations.items()) <= 256 * 1024


def test_parameters_too_large_for_the_pod_environment_are_refused() -> None:
    with pytest.raises(UsageError) as info:
        m.job_manifest(spec(parameters={"x": "a" * m.MAX_ENV_STRING_BYTES}))
    assert "DOK_PARAMETERS would be" in info.value.message and "by reference" in (info.value.hint or "")


def test_the_env_limit_is_the_kernels() -> None:
    """MAX_ENV_STRING_BYTES is what this Linux kernel enforces on exec: at the limit the process starts,
    one byte over it does not (as a container's entrypoint would not)."""
    import errno
    import subprocess
    import sys

    def start(size: int) -> int | None:
        value = "a" * (size - len("DOK_PARAMETERS=") - 1)
        try:
            subprocess.run([sys.executable, "-c", "pass"], env={"DOK_PARAMETERS": value}, check=True)
        except OSError as exc:
            return exc.errno
        return None

    assert start(m.MAX_ENV_STRING_BYTES) is None
    assert start(m.MAX_ENV_STRING_BYTES + 1) == errno.E2BIG
