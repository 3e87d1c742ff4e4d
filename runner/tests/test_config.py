"""RunnerConfig.resolve: arguments > DOK_* environment > defaults, with clear errors."""

from __future__ import annotations

import pytest

from dok.runner.config import RunnerConfig
from dok.runner.exceptions import ConfigError

BASE = {
    "DOK_IDENTIFIER": "0f8e2d3c-1111-2222-3333-444455556666",
    "DOK_FLOW_NAME": "My Flow",
    "DOK_IMAGE": "dok/my-flow:abc",
    "DOK_NAMESPACE": "dok-test",
    "DOK_POD_NAME": "dok-my-flow-0f8e2d3c-job-abcde",
    "DOK_POD_UID": "uid-1",
    "DOK_POD_IP": "10.244.0.7",
    "DOK_BUNDLE_SHA256": "a" * 64,
}


def test_resolve_reads_environment_and_defaults():
    env = dict(BASE, DOK_MIN_WORKERS="1", DOK_MAX_WORKERS="4", DOK_PARAMETERS='{"n": 3}',
               DOK_WORKER_START_TIMEOUT="30", DOK_WORKER_RESOURCES='{"requests": {"cpu": "1500m"}}',
               DOK_WORKER_DEATH_TIMEOUT="20s")
    c = RunnerConfig.resolve(env)
    assert (c.spec.min_workers, c.spec.max_workers) == (1, 4)
    assert c.spec.parameters == {"n": 3}
    assert c.spec.worker_start_timeout == 30.0 and c.spec.worker_death_timeout == 20.0
    assert c.scheduler_address == "tcp://10.244.0.7:8786"
    assert c.nthreads == 2  # ceil(1.5 cpu)
    assert c.termination_log == "/dev/termination-log"
    assert c.bundle_sha256 == "a" * 64
    assert c.worker_failure_budget == 9
    assert c.spec.image_pull_policy == "IfNotPresent"
    assert c.spec.adapt_target_duration == 1.0
    assert RunnerConfig.resolve(dict(BASE, DOK_ADAPT_TARGET_DURATION="5s")).spec.adapt_target_duration == 5.0
    assert (c.spec.identifier, c.spec.flow_name, c.image, c.namespace) == (BASE["DOK_IDENTIFIER"], "My Flow", "dok/my-flow:abc",
                                                                 "dok-test")


def test_launcher_extras_are_accepted():
    """Pull policy, empty resources; variables that are no run setting of the pod (a stale DOK_SECRET_ENV from
    an older launcher) are ignored."""
    env = dict(BASE, DOK_IMAGE_PULL_POLICY="Never", DOK_WORKER_RESOURCES="{}", DOK_SECRET_ENV='{"A": {}}',
               DOK_IMAGE_PULL_SECRETS='["regcred"]')
    c = RunnerConfig.resolve(env)
    assert c.spec.image_pull_policy == "Never" and c.spec.worker_resources == {}


def test_arguments_beat_environment_beat_defaults():
    env = dict(BASE, DOK_MAX_WORKERS="4")
    c = RunnerConfig.resolve(env, defaults={"max_workers": 2, "min_workers": 1}, max_workers=7, scheduler_port=None)
    assert c.spec.max_workers == 7 and c.spec.min_workers == 1 and c.spec.scheduler_port == 8786
    assert RunnerConfig.resolve(env, defaults={"max_workers": 2}).spec.max_workers == 4
    assert RunnerConfig.resolve(BASE, defaults={"max_workers": 2}).spec.max_workers == 2
    assert RunnerConfig.resolve(BASE).spec.max_workers == 1


def test_missing_values_are_named():
    env = dict(BASE)
    del env["DOK_POD_IP"], env["DOK_IMAGE"]
    with pytest.raises(ConfigError, match="DOK_IMAGE, DOK_POD_IP"):
        RunnerConfig.resolve(env)


@pytest.mark.parametrize("var,value,match", [
    ("DOK_MAX_WORKERS", "three", "DOK_MAX_WORKERS='three': is not an integer"),
    ("DOK_MAX_WORKERS", "0", "DOK_MAX_WORKERS=0: must be an integer >= 1"),
    ("DOK_MIN_WORKERS", "-1", "DOK_MIN_WORKERS=-1: must be an integer >= 0"),
    ("DOK_PARAMETERS", "{nope", "DOK_PARAMETERS='{nope': is not valid JSON"),
    ("DOK_PARAMETERS", "[1, 2]", "must be a JSON object"),
    ("DOK_WORKER_START_TIMEOUT", "soon", "not a number of seconds"),
    ("DOK_WORKER_START_TIMEOUT", "-5", "DOK_WORKER_START_TIMEOUT=-5.0: must be a positive number"),
    ("DOK_WORKER_RESOURCES", '{"requests": {"cpu": "lots"}}', "not a Kubernetes quantity"),
    ("DOK_WORKER_RESOURCES", '{"cpu": "1"}', "must look like"),
    ("DOK_POD_IP", "job-pod", "not an IP address"),
    ("DOK_NAMESPACE", "Bad_NS", "DOK_NAMESPACE='Bad_NS': must be a Kubernetes namespace name"),
    ("DOK_IDENTIFIER", "has spaces in it", "not a valid label value"),
    ("DOK_SCHEDULER_PORT", "70000", "DOK_SCHEDULER_PORT=70000: must be an integer from 1 to 65535"),
    ("DOK_BUNDLE_SHA256", "abc", "not a sha256"),
    ("DOK_IMAGE_PULL_POLICY", "Sometimes", "not a pull policy"),
])
def test_malformed_values_are_refused_with_the_variable_name(var, value, match):
    with pytest.raises(ConfigError, match=match):
        RunnerConfig.resolve(dict(BASE, **{var: value}))


def test_min_greater_than_max():
    with pytest.raises(ConfigError, match=r"DOK_MIN_WORKERS=3: must be <= max_workers \(2\)"):
        RunnerConfig.resolve(dict(BASE, DOK_MIN_WORKERS="3", DOK_MAX_WORKERS="2"))


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown runner setting"):
        RunnerConfig.resolve(BASE, max_wrokers=3)


def test_config_is_frozen_and_ipv6_address():
    c = RunnerConfig.resolve(dict(BASE, DOK_POD_IP="fd00::7", DOK_SCHEDULER_PORT="9000"))
    assert c.scheduler_address == "tcp://[fd00::7]:9000"
    with pytest.raises(Exception):
        c.spec.max_workers = 3  # type: ignore[misc]


def test_nthreads_explicit_and_default():
    assert RunnerConfig.resolve(BASE).nthreads == 1
    assert RunnerConfig.resolve(dict(BASE, DOK_WORKER_NTHREADS="3")).nthreads == 3
    assert RunnerConfig.resolve(dict(BASE, DOK_WORKER_RESOURCES='{"limits": {"cpu": "2"}}')).nthreads == 2
