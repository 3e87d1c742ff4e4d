"""Manifest builders: labels on everything, restricted security context, the job pod env contract,
least-privilege RBAC, validation of bad values."""

from __future__ import annotations

import json

import pytest

from dok.core import labels
from dok.core.exceptions import DokError
from dok.core.names import is_dns_label
from dok.core.runspec import RunSettingError, RunSpec
from dok.launcher import manifests as m
from dok.launcher.exceptions import UsageError

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def spec(**kw):
    base = dict(identifier=ID, flow_name="Fan Out!", namespace="team-a", image="localhost:5000/fanout:abc",
                min_workers=0, max_workers=3, parameters={"n": 10})
    base.update(kw)
    return RunSpec(**base)


def pod_spec(job):
    return job["spec"]["template"]["spec"]


def env_of(job):
    return {e["name"]: e for e in pod_spec(job)["containers"][0]["env"]}


def test_job_shape():
    job = m.job_manifest(spec(active_deadline_seconds=600, ttl_seconds_after_failure=300))
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "team-a"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    ps = pod_spec(job)
    assert ps["restartPolicy"] == "Never"
    assert ps["serviceAccountName"] == m.RUNNER_NAME
    (c,) = ps["containers"]
    assert c["image"] == "localhost:5000/fanout:abc"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == ["python", "-m", "dok.runner", "/opt/dok/flow.dokflow"]
    assert c["terminationMessagePolicy"] == "File"


def test_optional_fields_absent_by_default():
    job = m.job_manifest(spec())
    assert "activeDeadlineSeconds" not in job["spec"]
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400  # the failure TTL; the runner shortens it on success
    assert "ttlSecondsAfterFinished" not in m.job_manifest(spec(ttl_seconds_after_failure=None))["spec"]
    ps = pod_spec(job)
    for key in ("imagePullSecrets", "nodeSelector", "tolerations"):
        assert key not in ps
    assert ps["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"},
                                                "limits": {"memory": "2Gi"}}  # RunSpec's default
    assert "resources" not in pod_spec(m.job_manifest(spec(resources={})))["containers"][0]  # {}: none


def test_job_options_passed_through():
    job = m.job_manifest(spec(resources={"requests": {"cpu": "250m"}}, image_pull_secrets=("regcred",),
                              node_selector={"disk": "ssd"},
                              tolerations=({"key": "k", "operator": "Exists", "effect": "NoSchedule"},),
                              service_account_name="custom"))
    ps = pod_spec(job)
    assert ps["imagePullSecrets"] == [{"name": "regcred"}]
    assert ps["nodeSelector"] == {"disk": "ssd"}
    assert ps["tolerations"][0]["key"] == "k"
    assert ps["serviceAccountName"] == "custom"
    assert ps["containers"][0]["resources"] == {"requests": {"cpu": "250m"}}


def test_labels_on_job_and_pod():
    job = m.job_manifest(spec())
    want = labels.run_labels(identifier=ID, flow_name="Fan Out!", component="job")
    for lbls in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert lbls == want
        assert lbls[labels.MANAGED_BY_LABEL] == "dok"
        assert lbls[labels.IDENTIFIER_LABEL] == ID
        assert lbls[labels.COMPONENT_LABEL] == "job"
        assert labels.FLOW_LABEL in lbls


def test_rbac_objects_labelled():
    for obj in (m.service_account_manifest("ns"), m.role_manifest("ns"), m.role_binding_manifest("ns")):
        assert obj["metadata"]["labels"][labels.MANAGED_BY_LABEL] == "dok"
        assert labels.COMPONENT_LABEL in obj["metadata"]["labels"]
        assert obj["metadata"]["namespace"] == "ns"


def test_security_context_restricted():
    ps = pod_spec(m.job_manifest(spec()))
    psc = ps["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 1000
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = ps["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc.get("privileged") is False
    mounts = {v["mountPath"]: v["name"] for v in ps["containers"][0]["volumeMounts"]}
    assert mounts["/tmp"] == "tmp"
    assert {"name": "tmp", "emptyDir": {}} in ps["volumes"]


def test_env_contract():
    env = env_of(m.job_manifest(spec(worker_resources={"limits": {"cpu": "1"}}, worker_start_timeout=45)))
    assert env["DOK_IDENTIFIER"]["value"] == ID
    assert env["DOK_FLOW_NAME"]["value"] == "Fan Out!"
    assert env["DOK_IMAGE"]["value"] == "localhost:5000/fanout:abc"
    assert env["DOK_MIN_WORKERS"]["value"] == "0"
    assert env["DOK_MAX_WORKERS"]["value"] == "3"
    assert json.loads(env["DOK_PARAMETERS"]["value"]) == {"n": 10}
    assert env["DOK_WORKER_START_TIMEOUT"]["value"] == "45"
    assert json.loads(env["DOK_WORKER_RESOURCES"]["value"]) == {"limits": {"cpu": "1"}}
    assert env["DOK_NAMESPACE"]["value"] == "team-a"
    for name, path in (("DOK_POD_NAME", "metadata.name"), ("DOK_POD_UID", "metadata.uid"),
                       ("DOK_POD_IP", "status.podIP")):
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == path
    # every value is a string (Kubernetes requires it)
    assert all(isinstance(e["value"], str) for e in env.values() if "value" in e)


def test_secrets_are_refs_never_values():
    job = m.job_manifest(spec(secret_env={"DB_PASSWORD": "db-creds:password"}))
    env = env_of(job)
    assert env["DB_PASSWORD"] == {"name": "DB_PASSWORD",
                                  "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}
    assert "DOK_SECRET_ENV" not in env  # the secretKeyRef variables are the whole description


def test_rbac_least_privilege():
    role = m.role_manifest("ns")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {("", "pods", v) for v in ("create", "get", "list", "watch", "delete")} | {
        ("", "pods/log", "get"), ("", "events", "list"), ("", "events", "watch"),
        ("batch", "jobs", "get"), ("batch", "jobs", "patch")}  # its own Job's TTL, shortened after a success
    operator = m.role_manifest("ns", backend="operator")
    granted_operator = {(g, r, v) for rule in operator["rules"] for g in rule["apiGroups"]
                        for r in rule["resources"] for v in rule["verbs"]}
    assert granted_operator - granted == {("kubernetes.dask.org", r, v) for r in ("daskclusters", "daskworkergroups")
                                          for v in ("create", "delete", "list")}  # backend "operator" only
    assert not any("*" in x for g in granted for x in g)
    assert "secrets" not in {r for _, r, _ in granted}
    assert role["kind"] == "Role"  # namespaced, never ClusterRole
    rb = m.role_binding_manifest("ns")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": m.RUNNER_NAME}
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": m.RUNNER_NAME, "namespace": "ns"}]


def test_missing_rules():
    assert m.missing_rules(m.role_manifest("ns")["rules"]) == []
    assert m.missing_rules([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]) == []
    lacking = m.missing_rules([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    assert "create pods" in lacking and "delete pods" in lacking and "get pods/log" in lacking
    assert m.missing_rules(None)
    old_role = [r for r in m.role_manifest("ns")["rules"] if r["apiGroups"] != ["batch"]]
    assert m.missing_rules(old_role) == ["get jobs", "patch jobs"]  # `dok setup` updates a Role made before


@pytest.mark.parametrize("flow,ident", [("fanout", ID), ("A" * 200, ID), ("---", "x"), ("Ünïcode flow", ID)])
def test_job_name_is_dns_label(flow, ident):
    name = m.job_name(flow, ident)
    assert len(name) <= 57  # leaves room for the pod suffix
    assert is_dns_label(name), name


def test_job_names_differ_per_run():
    assert m.job_name("f", ID) != m.job_name("f", "1" + ID[1:])


@pytest.mark.parametrize("kw,fragment", [
    ({"namespace": "Bad_NS"}, "namespace name"),
    ({"namespace": "x" * 64}, "namespace name"),
    ({"max_workers": 0}, "max_workers"),
    ({"min_workers": -1}, "min_workers"),
    ({"min_workers": 5, "max_workers": 2}, r"must be <= max_workers \(2\)"),
    ({"image": ""}, "image"),
    ({"image": "has space"}, "image"),
    ({"active_deadline_seconds": 0}, "active_deadline_seconds"),
    ({"worker_start_timeout": 0}, "worker_start_timeout"),
    ({"image_pull_policy": "Sometimes"}, "pull policy"),
    ({"parameters": {"x": object()}}, "JSON"),
    ({"secret_env": {"1BAD": "s:k"}}, "names must match"),
])
def test_bad_values_rejected(kw, fragment):
    with pytest.raises(RunSettingError, match=fragment):
        spec(**kw)


@pytest.mark.parametrize("text", ["", "nokey", "Upper:key", "s:", ":k", "s:bad key"])
def test_bad_secret_refs(text):
    with pytest.raises(UsageError):
        m.SecretRef.parse(text)


def test_secret_ref_parse():
    assert m.SecretRef.parse("db-creds:password") == m.SecretRef(secret="db-creds", key="password")
    assert m.SecretRef.parse("db-creds/pass.word") == m.SecretRef(secret="db-creds", key="pass.word")


@pytest.mark.parametrize("name,expected", [("API_TOKEN", True), ("DB_PASSWORD", True),
                                           ("AWS_SECRET_ACCESS_KEY", True), ("LOG_LEVEL", False)])
def test_looks_secret(name, expected):
    assert m.looks_secret(name) is expected


@pytest.mark.parametrize("image", ["Bad Image:x", "registry:5000/Name:tag", "name:bad tag", "name:.dot",
                                   "name:" + "t" * 129, "registry:5000/", "name@sha256:xyz"])
def test_invalid_image_reference_says_what_a_valid_one_looks_like(image):
    with pytest.raises(DokError) as info:
        spec(image=image)
    assert repr(image) in info.value.message
    hint = info.value.hint
    assert "registry:5000/name:tag" in hint and "lowercase" in hint and "128" in hint and "[A-Za-z0-9_.-]" in hint
    assert "dok build" not in hint


@pytest.mark.parametrize("image", ["img:1", "localhost:5000/fanout:abc", "registry:5000/team/name:v1.2_3-x",
                                   "python:3.11-slim", "docker.io/library/python", "name:" + "t" * 128,
                                   "name@sha256:" + "0" * 64, "127.0.0.1:5000/a__b-c.d:T"])
def test_valid_image_references_accepted(image):
    assert spec(image=image).image == image


@pytest.mark.parametrize("ident", ["Not A/Valid id!", "", "-abc", "abc.", "x" * 64, "a b"])
def test_invalid_run_identifier(ident):
    with pytest.raises(UsageError, match="invalid run identifier") as info:
        m.validate_identifier(ident)
    assert repr(ident) in info.value.message and "UUID" in info.value.hint


@pytest.mark.parametrize("ident", [ID, "abc", "A.b_c-1", "x" * 63])
def test_valid_run_identifier(ident):
    m.validate_identifier(ident)


def test_environment_secret_env_reaches_the_job_and_execute_overrides_per_name():
    from dok.core.environment import DaskOnKubernetesEnvironment
    from dok.launcher.launch import run_spec_for

    env = DaskOnKubernetesEnvironment(secret_env={"DB_PASSWORD": "db-creds:password", "API_TOKEN": "api:token"})
    job = m.job_manifest(run_spec_for(env, identifier=ID, namespace="ns", image="img:1",
                                      secret_env={"API_TOKEN": "api-v2:token"}))
    refs = {k: v["valueFrom"]["secretKeyRef"] for k, v in env_of(job).items() if "valueFrom" in v
            and "secretKeyRef" in v["valueFrom"]}
    assert refs == {"DB_PASSWORD": {"name": "db-creds", "key": "password"},
                    "API_TOKEN": {"name": "api-v2", "key": "token"}}


def test_job_pod_is_not_evicted_by_cluster_autoscalers():
    job = m.job_manifest(spec())
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
