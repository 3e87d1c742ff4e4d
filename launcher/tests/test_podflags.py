"""`dok run`'s pod flags: parsing and what run settings they give."""

from __future__ import annotations

import pytest

from dok.launcher.cli import build_parser
from dok.launcher.exceptions import UsageError
from dok.launcher.podflags import parse_resources, parse_toleration, pod_settings


def settings(*flags: str) -> dict:
    return pod_settings(build_parser().parse_args(["run", "flow.py", *flags]))


def test_resources_requests_and_limits() -> None:
    assert parse_resources("cpu=500m,memory=1Gi,nvidia.com/gpu=1") == {
        "requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "1Gi", "nvidia.com/gpu": "1"}}
    assert parse_resources("cpu=1,limits.cpu=2,requests.memory=1Gi") == {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2"}}
    for bad in ("cpu", "cpu=", "=1", "cpu=1,,"):
        with pytest.raises(UsageError, match="is not NAME=QUANTITY"):
            parse_resources(bad)


@pytest.mark.parametrize("text,toleration", [
    ("spot=true:NoSchedule", {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}),
    ("gpu:NoExecute", {"key": "gpu", "operator": "Exists", "effect": "NoExecute"}),
    ("example.com/pool=a:PreferNoSchedule",
     {"key": "example.com/pool", "operator": "Equal", "value": "a", "effect": "PreferNoSchedule"}),
])
def test_tolerations(text: str, toleration: dict) -> None:
    assert parse_toleration(text) == toleration


@pytest.mark.parametrize("bad", ["spot", "spot=true", "spot:Sometimes", ":NoSchedule", "spot=:NoSchedule"])
def test_bad_tolerations_are_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="KEY\\[=VALUE\\]:EFFECT"):
        parse_toleration(bad)


def test_shared_flags_go_to_both_pods_and_prefixed_ones_to_one() -> None:
    assert settings() == {}
    assert settings("--node-selector", "a=1") == {"node_selector": {"a": "1"}, "worker_node_selector": {"a": "1"}}
    got = settings("--node-selector", "a=1", "--job-node-selector", "j=2", "--worker-node-selector", "w=3",
                   "--toleration", "t:NoSchedule", "--worker-toleration", "spot=true:NoSchedule")
    assert got["node_selector"] == {"a": "1", "j": "2"} and got["worker_node_selector"] == {"a": "1", "w": "3"}
    assert [t["key"] for t in got["tolerations"]] == ["t"]
    assert [t["key"] for t in got["worker_tolerations"]] == ["t", "spot"]
    only_workers = settings("--worker-node-selector", "w=3")
    assert only_workers == {"worker_node_selector": {"w": "3"}}   # the job pod keeps the environment's


def test_every_other_flag() -> None:
    got = settings("--worker-resources", "cpu=2,memory=4Gi", "--job-resources", "memory=1Gi", "--label", "team=ml",
                   "--annotation", "note=x", "--priority-class", "low", "--service-account", "sa",
                   "--worker-template", "w.yaml", "--job-template", "j.yaml")
    assert got == {"worker_resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
                   "resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}},
                   "labels": {"team": "ml"}, "annotations": {"note": "x"}, "priority_class": "low",
                   "service_account_name": "sa", "worker_template": "w.yaml", "job_template": "j.yaml"}
