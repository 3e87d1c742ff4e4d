"""RunSpec: every setting of a run, validated once; the job pod environment and the JSON round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dok.core.runspec import POD_FIELD_ENV, RunSettingError, RunSpec, env_var

ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def full() -> RunSpec:
    return RunSpec(identifier=ID, flow_name="Fan Out!", image="localhost:5000/fanout:abc", namespace="team-a",
                   parameters={"n": 10, "xs": [1, 2]}, min_workers=1, max_workers=4, worker_start_timeout=45,
                   worker_resources={"limits": {"cpu": "1"}}, worker_nthreads=2, image_pull_policy="Never",
                   resources={"requests": {"memory": "1Gi"}}, secret_env={"DB": "db-creds/password"},
                   image_pull_secrets=["regcred"], active_deadline_seconds=600, ttl_seconds_after_failure=None,
                   node_selector={"disk": "ssd"}, tolerations=[{"key": "k", "operator": "Exists"}])


def test_defaults() -> None:
    spec = RunSpec()
    assert (spec.min_workers, spec.max_workers, spec.namespace, spec.worker_start_timeout) == (0, 1, None, 120.0)
    assert spec.ttl_seconds_after_failure == 86400 and spec.ttl_seconds_after_success == 600
    assert spec.scheduler_port == 8786
    assert RunSpec().identifier != spec.identifier  # a fresh identifier per run


def test_the_dashboard_is_on_unless_turned_off() -> None:
    assert RunSpec().dashboard == "on"
    spec = RunSpec(dashboard="off")
    assert spec.to_env()["DOK_DASHBOARD"] == "off"
    assert RunSpec.from_env(spec.to_env()).dashboard == "off"


def test_frozen_and_keyword_only() -> None:
    with pytest.raises(TypeError):
        RunSpec("id")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunSpec().max_workers = 3  # type: ignore[misc]


def test_normalized_once() -> None:
    spec = full()
    assert spec.secret_env == {"DB": "db-creds:password"} and spec.secret_refs == {"DB": ("db-creds", "password")}
    assert spec.image_pull_secrets == ("regcred",) and spec.tolerations == ({"key": "k", "operator": "Exists"},)
    assert spec.worker_start_timeout == 45.0 and isinstance(spec.worker_start_timeout, float)


@pytest.mark.parametrize("kw, message", [
    ({"max_workers": 0}, "max_workers=0: must be an integer >= 1"),
    ({"max_workers": True}, "max_workers=True: must be an integer >= 1"),
    ({"max_workers": 2.0}, "max_workers=2.0: must be an integer >= 1"),
    ({"min_workers": -1}, "min_workers=-1: must be an integer >= 0"),
    ({"min_workers": 3, "max_workers": 2}, r"min_workers=3: must be <= max_workers \(2\)"),
    ({"namespace": "Bad_NS"}, "namespace='Bad_NS': must be a Kubernetes namespace name"),
    ({"identifier": "a b"}, "identifier='a b': is not a valid label value"),
    ({"image": "Bad x"}, "image='Bad x': is not an image reference"),
    ({"worker_start_timeout": 0}, "worker_start_timeout=0: must be a positive number of seconds"),
    ({"active_deadline_seconds": 0}, "active_deadline_seconds=0: must be an integer >= 1"),
    ({"scheduler_port": 70000}, "scheduler_port=70000: must be an integer from 1 to 65535"),
    ({"image_pull_policy": "Sometimes"}, "is not a pull policy"),
    ({"dashboard": "yes"}, "dashboard='yes'"),
    ({"parameters": {"x": object()}}, "not JSON-serialisable"),
    ({"parameters": [1]}, "must be a JSON object"),
    ({"worker_resources": {"cpu": "1"}}, "must look like"),
    ({"resources": {"limits": {"cpu": "lots"}}}, "not a Kubernetes quantity"),
    ({"secret_env": {"1BAD": "s:k"}}, "names must match"),
    ({"secret_env": {"DOK_X": "s:k"}}, "reserved for dok"),
    ({"secret_env": {"A": "nokey"}}, "SECRET:KEY"),
    ({"image_pull_secrets": "regcred"}, "list of Secret names"),
    ({"flow_name": " "}, "non-empty string"),
    ({"worker_processes": 0}, "worker_processes=0: must be an integer"),
    ({"worker_processes": 65, "max_workers": 65}, "worker_processes=65: must be an integer"),
    ({"worker_processes": 4, "max_workers": 6}, r"max_workers=6: must be a multiple of worker_processes \(4\): "
                                                r"each worker pod runs 4 workers; use 4 or 8"),
    ({"worker_processes": 4, "max_workers": 3}, r"max_workers=3: .*; use 4$"),
    ({"worker_processes": 2, "max_workers": 2, "backend": "operator"},
     r"worker_processes=2: must be 1 with backend 'operator'"),
])
def test_bad_values_name_the_setting(kw: dict, message: str) -> None:
    with pytest.raises(RunSettingError, match=message) as info:
        RunSpec(**kw)
    assert info.value.exit_code == 2 and info.value.setting in kw


def test_env_round_trip() -> None:
    spec = full()
    env = spec.to_env()
    assert all(name.startswith("DOK_") and isinstance(value, str) for name, value in env.items())
    assert env["DOK_MAX_WORKERS"] == "4" and env["DOK_WORKER_START_TIMEOUT"] == "45"
    assert json.loads(env["DOK_PARAMETERS"]) == {"n": 10, "xs": [1, 2]}
    # Settings the Job manifest carries are not in the pod environment (DOK_SECRET_ENV is gone for good).
    assert not {"DOK_SECRET_ENV", "DOK_IMAGE_PULL_SECRETS", "DOK_RESOURCES", "DOK_TTL_SECONDS_AFTER_FINISHED"} & set(env)
    manifest_only = {f.name for f in dataclasses.fields(RunSpec) if not f.metadata["dok"].env}
    back = RunSpec.from_env(env).replace(**{n: getattr(spec, n) for n in manifest_only})
    assert back == spec
    assert not set(POD_FIELD_ENV) & set(env)


def test_from_env_priority_and_errors_name_the_variable() -> None:
    env = RunSpec(identifier=ID, max_workers=4).to_env()
    assert RunSpec.from_env(env, defaults={"max_workers": 2}).max_workers == 4
    assert RunSpec.from_env(env, overrides={"max_workers": 7}).max_workers == 7
    assert RunSpec.from_env({}, defaults={"max_workers": 2}).max_workers == 2
    with pytest.raises(RunSettingError, match="DOK_MAX_WORKERS=0: must be an integer >= 1"):
        RunSpec.from_env({"DOK_MAX_WORKERS": "0"})
    with pytest.raises(RunSettingError, match="DOK_MAX_WORKERS='many': is not an integer"):
        RunSpec.from_env({"DOK_MAX_WORKERS": "many"})
    assert RunSpec.from_env({"DOK_WORKER_START_TIMEOUT": "30s"}).worker_start_timeout == 30.0


def test_json_round_trip() -> None:
    spec = full()
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(Exception, match="unknown run setting.*colour"):
        RunSpec.from_dict({**spec.to_dict(), "colour": "blue"})


def test_env_var_names() -> None:
    assert env_var("max_workers") == "DOK_MAX_WORKERS"


def test_a_new_setting_is_one_declaration() -> None:
    """What adding a run setting takes: its `setting(...)` line. Validation, the pod environment and the JSON
    round trip follow (shown on a subclass standing in for the edited RunSpec)."""
    from dok.core.runspec import setting

    Scaled = dataclasses.make_dataclass(
        "Scaled", [("scale_interval", float, setting(2.0, kind="float", minimum=0))],
        bases=(RunSpec,), frozen=True, kw_only=True)
    spec = Scaled(identifier=ID, scale_interval=5)
    assert spec.scale_interval == 5.0 and spec.to_env()["DOK_SCALE_INTERVAL"] == "5"
    assert Scaled.from_env({"DOK_SCALE_INTERVAL": "7s"}).scale_interval == 7.0
    assert Scaled.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(RunSettingError, match="scale_interval=-1: must be a positive number of seconds"):
        Scaled(scale_interval=-1)


def test_worker_processes_round_trip_through_the_pod_environment() -> None:
    spec = RunSpec(max_workers=8, worker_processes=4)
    assert spec.to_env()["DOK_WORKER_PROCESSES"] == "4"
    assert RunSpec.from_env(spec.to_env()).worker_processes == 4
    assert RunSpec().worker_processes == 1
