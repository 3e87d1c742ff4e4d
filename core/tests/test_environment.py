"""DaskOnKubernetesEnvironment: defaults, validation, JSON round trip, lazy delegation."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import pytest

from dok.core import DaskOnKubernetesEnvironment as Env
from dok.core import EnvironmentConfigError
from dok.core import environment as environment_module

SHA = "a" * 64


def test_defaults():
    env = Env()
    v = sys.version_info
    assert env.base_image == f"python:{v.major}.{v.minor}-slim"
    assert (env.max_workers, env.min_workers, env.namespace) == (1, 0, None)  # None: the context's namespace
    assert env.registry_url is None and env.python_dependencies == () and env.env_vars == {} and env.files == {}
    assert env.image is None and env.flow_name is None and env.bundle_sha256 is None


def test_seed_positional_order_then_keyword_only_and_frozen():
    """The seed's signature: (base_image, registry_url, python_dependencies, image_name, image_tag, env_vars,
    files, max_workers), positional; dok's additions are keyword-only."""
    env = Env("python:3.11", "localhost:5000", ["pandas"], "img", "v1", {"A": "1"}, {"d.csv": "/app/d.csv"}, 3)
    assert (env.base_image, env.registry_url, env.python_dependencies, env.image_name, env.image_tag) == (
        "python:3.11", "localhost:5000", ("pandas",), "img", "v1")
    assert (env.env_vars, env.files, env.max_workers) == ({"A": "1"}, {"d.csv": "/app/d.csv"}, 3)
    with pytest.raises(TypeError):
        Env("python:3.11", None, None, None, None, None, None, 3, 0)  # min_workers is keyword-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        Env().max_workers = 3


def test_run_takes_the_seed_keyword(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(run=lambda env, path: calls.append(path) or "state")
    monkeypatch.setattr(environment_module.importlib, "import_module", lambda name: fake)
    assert Env().run(environment_file_path="/opt/dok/flow.dokflow") == "state"
    assert Env().run() == "state"
    assert calls == ["/opt/dok/flow.dokflow", "/opt/dok/flow.dokflow"]


def test_run_spec_carries_the_environment_settings_and_arguments_win():
    env = Env(image_name="img", image_tag="v1", bundle_sha256=SHA, flow_name="fanout", max_workers=3,
              min_workers=1, namespace="team", secret_env={"A": "s:a", "B": "s:b"})
    spec = env.run_spec(max_workers=5, secret_env={"B": "t:b"}, identifier="run-1", min_workers=None)
    assert (spec.flow_name, spec.image, spec.namespace, spec.min_workers, spec.max_workers) == (
        "fanout", "img:v1", "team", 1, 5)
    assert spec.secret_env == {"A": "s:a", "B": "t:b"} and spec.identifier == "run-1"
    assert Env().run_spec().namespace is None  # the kubeconfig context's, resolved by the launcher


def test_normalisation():
    env = Env(registry_url="localhost:5000/", python_dependencies=[" pandas==2.2.3 ", "requests"], env_vars=None)
    assert env.registry_url == "localhost:5000"
    assert env.python_dependencies == ("pandas==2.2.3", "requests")
    assert env.env_vars == {}


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"base_image": "Python 3"}, "base_image"),
        ({"base_image": ""}, "base_image"),
        ({"registry_url": "http://localhost:5000"}, "registry_url"),
        ({"registry_url": "local host"}, "registry_url"),
        ({"python_dependencies": "pandas"}, "python_dependencies"),
        ({"python_dependencies": ["--index-url=http://evil"]}, "python_dependencies"),
        ({"python_dependencies": ["a\nb"]}, "python_dependencies"),
        ({"image_name": "MyImage"}, "image_name"),
        ({"image_name": "a//b"}, "image_name"),
        ({"image_tag": ".hidden"}, "image_tag"),
        ({"image_tag": "x" * 129}, "image_tag"),
        ({"env_vars": {"1BAD": "x"}}, "env_vars"),
        ({"env_vars": {"GOOD": 1}}, "env_vars"),
        ({"env_vars": {"DOK_IDENTIFIER": "x"}}, "env_vars"),
        ({"env_vars": ["A=1"]}, "env_vars"),
        ({"files": {"data.csv": "relative/path"}}, "files"),
        ({"files": {"data.csv": "/opt/dok/flow.dokflow"}}, "files"),
        ({"files": {"data.csv": "/app/../etc/passwd"}}, "files"),
        ({"max_workers": 0}, "max_workers"),
        ({"max_workers": True}, "max_workers"),
        ({"max_workers": 2.0}, "max_workers"),
        ({"min_workers": -1}, "min_workers"),
        ({"min_workers": 3, "max_workers": 2}, "min_workers"),
        ({"namespace": "Default"}, "namespace"),
        ({"namespace": "a" * 64}, "namespace"),
        ({"namespace": "-x"}, "namespace"),
        ({"bundle_sha256": "abc"}, "bundle_sha256"),
        ({"flow_name": ""}, "flow_name"),
    ],
)
def test_bad_values_name_the_argument(kwargs, argument):
    with pytest.raises(EnvironmentConfigError, match=rf"DaskOnKubernetesEnvironment\({argument}="):
        Env(**kwargs)


@pytest.mark.parametrize(
    "base_image",
    ["python:3.11-slim", "localhost:5000/team/img:tag", "ubuntu", "registry.example.com/a/b@sha256:" + "0" * 64],
)
def test_good_base_images(base_image):
    assert Env(base_image=base_image).base_image == base_image


def test_image_reference_once_built():
    env = Env(registry_url="localhost:5000", image_name="dok/fanout", image_tag="v1")
    assert env.image is None  # not built yet
    built = env.with_image(flow_name="fanout", bundle_sha256=SHA)
    assert built.image == "localhost:5000/dok/fanout:v1"
    assert Env(image_name="fanout", image_tag="v1", bundle_sha256=SHA).image == "fanout:v1"
    with pytest.raises(EnvironmentConfigError, match="image_tag"):
        env.with_image(image_tag="-bad")


def test_dict_round_trip_is_json_safe():
    env = Env(registry_url="localhost:5000", python_dependencies=["pandas"], image_name="x", image_tag="y",
              env_vars={"A": "1"}, files={"data.csv": "/app/data.csv"}, max_workers=4, min_workers=1,
              namespace="dok-test", flow_name="fanout", bundle_sha256=SHA,
              secret_env={"DB_PASSWORD": "db-creds:password"})
    d = json.loads(json.dumps(env.to_dict()))
    assert Env.from_dict(d) == env
    with pytest.raises(EnvironmentConfigError, match="unknown DaskOnKubernetesEnvironment field.*colour"):
        Env.from_dict({**d, "colour": "blue"})


def test_methods_without_the_package_raise_not_implemented(monkeypatch):
    real = environment_module.importlib.import_module

    def fake_import(name, *a, **k):
        if name.startswith("dok.") and name != "dok.core":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *a, **k)

    monkeypatch.setattr(environment_module.importlib, "import_module", fake_import)
    env = Env()
    with pytest.raises(NotImplementedError, match=r"dok\.builder.*install dok-builder \(pip install \./builder\)"):
        env.build(object())
    with pytest.raises(NotImplementedError, match=r"pip install \./launcher"):
        env.setup()
    with pytest.raises(NotImplementedError, match=r"pip install \./launcher"):
        env.execute()
    with pytest.raises(NotImplementedError, match=r"pip install \./runner"):
        env.run()


def test_methods_delegate_to_the_packages(monkeypatch):
    calls = []
    fake = {
        "dok.builder": types.SimpleNamespace(build=lambda env, flow, push: calls.append(("build", flow, push)) or "b"),
        "dok.launcher": types.SimpleNamespace(setup=lambda env: calls.append(("setup",)) or "s",
                                              execute=lambda env, **kw: calls.append(("execute", kw)) or "e"),
        "dok.runner": types.SimpleNamespace(run=lambda env, path: calls.append(("run", path)) or "r"),
    }
    monkeypatch.setattr(environment_module.importlib, "import_module", lambda name: fake[name])
    env = Env()
    assert env.build("FLOW", push=False) == "b"
    assert env.setup() == "s"
    assert env.execute(parameters={"n": 1}) == "e"
    assert env.run("/x.dokflow") == "r"
    assert calls == [("build", "FLOW", False), ("setup",), ("execute", {"parameters": {"n": 1}}), ("run", "/x.dokflow")]


def test_missing_function_in_package(monkeypatch):
    monkeypatch.setattr(environment_module.importlib, "import_module", lambda name: types.SimpleNamespace())
    with pytest.raises(NotImplementedError, match=r"dok\.runner does not provide run\(\)"):
        Env().run()


@pytest.mark.parametrize("name", ["API_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY", "ssh_key"])
def test_secret_looking_env_var_names_warn(name):
    import warnings

    from dok.core.exceptions import SecretEnvVarWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Env(env_vars={name: "v", "LOG_LEVEL": "debug"})
    texts = [str(w.message) for w in caught if issubclass(w.category, SecretEnvVarWarning)]
    assert len(texts) == 1 and name in texts[0] and "--secret-env" in texts[0], texts


def test_secret_env_normalized_and_kept_out_of_env_vars():
    env = Env(secret_env={"DB_PASSWORD": "db-creds/password", "API_TOKEN": ("api", "token.v1")})
    assert env.secret_env == {"DB_PASSWORD": "db-creds:password", "API_TOKEN": "api:token.v1"}
    assert env.env_vars == {}


@pytest.mark.parametrize("value,named", [
    ({"1BAD": "s:k"}, "1BAD"),                 # not an env var name
    ({"DOK_X": "s:k"}, "reserved"),            # dok's own
    ({"A": "no-key"}, "SECRET:KEY"),           # no key
    ({"A": "Upper:k"}, "SECRET:KEY"),          # Secret names are lowercase DNS names
    ({"A": "s:bad key"}, "SECRET:KEY"),        # key with a space
    ({"A": 42}, "SECRET:KEY"),
    ("A=s:k", "dict of NAME"),
])
def test_bad_secret_env(value, named):
    with pytest.raises(EnvironmentConfigError, match="secret_env") as info:
        Env(secret_env=value)
    assert named in str(info.value)


def test_secret_env_name_also_in_env_vars_is_refused():
    with pytest.raises(EnvironmentConfigError, match="also in env_vars"):
        Env(env_vars={"DB_HOST": "db"}, secret_env={"DB_HOST": "db:host"})


# -- pod settings ---------------------------------------------------------------------------------------------
def test_pod_settings_are_checked_carried_and_round_trip() -> None:
    from dok.core.environment import DaskOnKubernetesEnvironment as Env
    from dok.core.exceptions import EnvironmentConfigError

    env = Env(job_resources={"requests": {"cpu": "1"}}, worker_resources={"limits": {"nvidia.com/gpu": "1"}},
              node_selector={"pool": "a"}, worker_node_selector={"pool": "spot"},
              worker_tolerations=[{"key": "spot", "operator": "Exists"}], labels={"team": "ml"},
              priority_class="low", service_account="runner-sa",
              worker_template="containers:\n- env: [{name: A, value: '1'}]\n")
    spec = env.run_spec(image="img:1", namespace="ns")
    assert spec.resources == {"requests": {"cpu": "1"}} and spec.service_account_name == "runner-sa"
    assert spec.worker_node_selector == {"pool": "spot"} and spec.labels == {"team": "ml"}
    assert spec.worker_template["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    assert Env.from_dict(json.loads(json.dumps(env.to_dict()))) == env
    with pytest.raises(EnvironmentConfigError, match=r"worker_resources=.*not a Kubernetes quantity"):
        Env(worker_resources={"requests": {"cpu": "lots"}})
    with pytest.raises(EnvironmentConfigError, match="labels="):
        Env(labels={"team": "not a label value!"})
    with pytest.raises(EnvironmentConfigError, match="metadata.name is set by dok"):
        Env(job_template={"metadata": {"name": "x"}, "spec": {}})
    with pytest.raises(EnvironmentConfigError, match="is a file path: the launcher reads it"):
        Env(worker_template="worker.yaml").run_spec(image="img:1", namespace="ns")


def test_pull_secrets_and_backend_are_environment_fields_too() -> None:
    from dok.core.environment import DaskOnKubernetesEnvironment as Env
    from dok.core.exceptions import EnvironmentConfigError

    env = Env(image_pull_secrets=["regcred"], create_pull_secret=True, backend="operator")
    spec = env.run_spec(image="img:1", namespace="ns")
    assert spec.image_pull_secrets == ("regcred",) and spec.create_pull_secret is True and spec.backend == "operator"
    assert Env.from_dict(json.loads(json.dumps(env.to_dict()))) == env
    assert Env().run_spec(image="img:1").backend == "pods"  # unset: RunSpec's default
    with pytest.raises(EnvironmentConfigError, match="backend="):
        Env(backend="ray")
    with pytest.raises(EnvironmentConfigError, match="image_pull_secrets="):
        Env(image_pull_secrets="regcred")  # a string, not a list of names


def test_worker_processes_is_an_environment_field_checked_against_max_workers() -> None:
    env = Env(max_workers=8, worker_processes=4)
    assert env.run_spec(image="img:1").worker_processes == 4
    assert env.run_spec(image="img:1", worker_processes=2).worker_processes == 2  # the argument wins
    assert Env.from_dict(json.loads(json.dumps(env.to_dict()))) == env
    assert Env().run_spec(image="img:1").worker_processes == 1  # unset: RunSpec's default
    with pytest.raises(EnvironmentConfigError, match=r"max_workers=6\): must be a multiple of worker_processes \(4\)"):
        Env(max_workers=6, worker_processes=4)
    with pytest.raises(EnvironmentConfigError, match=r"worker_processes=2\): must be 1 with backend 'operator'"):
        Env(max_workers=2, worker_processes=2, backend="operator")
    with pytest.raises(EnvironmentConfigError, match="worker_processes=0"):
        Env(worker_processes=0)
