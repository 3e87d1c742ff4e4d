"""Outcome-dependent teardown: the Job's TTL by outcome, set on the runner's own Job."""

from __future__ import annotations

from dok.core.runspec import DEFAULT_TTL_SECONDS_AFTER_FAILURE, DEFAULT_TTL_SECONDS_AFTER_SUCCESS, RunSpec
from dok.runner.teardown import apply_outcome_ttl, owner_job, ttl_for


def test_defaults_short_after_success_long_after_failure():
    spec = RunSpec()
    assert ttl_for(spec, success=True) == DEFAULT_TTL_SECONDS_AFTER_SUCCESS == 600
    assert ttl_for(spec, success=False) == DEFAULT_TTL_SECONDS_AFTER_FAILURE == 86400
    custom = RunSpec(ttl_seconds_after_success=5, ttl_seconds_after_failure=None)
    assert ttl_for(custom, success=True) == 5 and ttl_for(custom, success=False) is None


def test_success_ttl_travels_in_the_job_pod_env():
    env = RunSpec(ttl_seconds_after_success=30).to_env()
    assert env["DOK_TTL_SECONDS_AFTER_SUCCESS"] == "30"
    assert RunSpec.from_env(env).ttl_seconds_after_success == 30
    assert "DOK_TTL_SECONDS_AFTER_FAILURE" not in env  # in the Job manifest, not the pod


def test_owner_job():
    pod = {"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "x"}, {"kind": "Job", "name": "j-1"}]}}
    assert owner_job(pod) == "j-1"
    assert owner_job({"metadata": {}}) is None


class FakeKube:
    def __init__(self, ttl):
        self.ttl = ttl
        self.patches = []

    def read(self, kind, ns, name):
        if kind == "Pod":
            return {"metadata": {"name": name, "ownerReferences": [{"kind": "Job", "name": "job-1"}]}}
        return {"metadata": {"name": name}, "spec": {"ttlSecondsAfterFinished": self.ttl}}

    def patch(self, kind, ns, name, body):
        self.patches.append((kind, ns, name, body))
        return {}


def test_success_shortens_the_ttl_failure_leaves_it():
    said = []
    kube = FakeKube(86400)
    assert apply_outcome_ttl(kube, namespace="ns", pod_name="p", spec=RunSpec(), success=True, say=said.append) == 600
    assert kube.patches == [("Job", "ns", "job-1", {"spec": {"ttlSecondsAfterFinished": 600}})]
    assert "10 min" in said[-1] and "success" in said[-1]
    kube = FakeKube(7200)  # created by the launcher with --ttl-failure 7200, which the runner cannot see
    assert apply_outcome_ttl(kube, namespace="ns", pod_name="p", spec=RunSpec(), success=False,
                             say=said.append) is None
    assert kube.patches == []  # the failure TTL the Job was created with stays
    assert "failure TTL" in said[-1]


def test_api_failure_is_a_warning_not_a_crash():
    class Broken(FakeKube):
        def patch(self, *a):
            raise RuntimeError("forbidden")

    said = []
    assert apply_outcome_ttl(Broken(86400), namespace="ns", pod_name="p", spec=RunSpec(), success=True,
                             say=said.append) is None
    assert "forbidden" in said[-1] and "failure TTL" in said[-1]
