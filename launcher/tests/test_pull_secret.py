"""The run's own image pull Secret (`dok run --create-pull-secret`): the credentials it takes, the Secret it
writes (schema-checked), where the password goes (only there), and the order of the Kubernetes steps:
rights first, Secret before Job, no Secret left when the Job cannot be made, swept by label at cleanup."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from kube_schema import SCHEMA_VERSIONS, schema_errors

sys.path.insert(0, str(Path(__file__).parent))
from fakekube import ID, FakeKube, job  # noqa: E402

from dok.core import DaskOnKubernetesEnvironment  # noqa: E402
from dok.core.exceptions import EXIT_USAGE  # noqa: E402
from dok.core.runspec import RunSettingError, RunSpec  # noqa: E402
from dok.kube import Conflict  # noqa: E402
from dok.launcher import pull_secret as ps  # noqa: E402
from dok.launcher.exceptions import ConfigError, PermissionDenied  # noqa: E402
from dok.launcher.handle import RunHandle  # noqa: E402
from dok.launcher.launch import execute  # noqa: E402
from dok.launcher.manifests import job_manifest  # noqa: E402

IMAGE = "127.0.0.1:5000/fanout:abc"
PASSWORD = "s3cret-pw-4711"
CREDS = ps.RegistryCredentials(registry="127.0.0.1:5000", username="dok", password=PASSWORD)


def spec(**kw: Any) -> RunSpec:
    return RunSpec(**{"identifier": ID, "flow_name": "fanout", "namespace": "team-a", "image": IMAGE, **kw})


def decoded(secret: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))


@pytest.mark.parametrize(("image", "registry"), [
    ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000"),
    ("localhost/x:1", "localhost"),
    ("registry.example.com/team/x@sha256:" + "a" * 64, "registry.example.com"),
    ("team/x:1", "docker.io"),
    ("x:1", "docker.io"),
])
def test_registry_of_an_image_reads_it_as_docker_does(image: str, registry: str) -> None:
    assert ps.registry_of(image) == registry


def test_the_secret_holds_one_auths_entry_and_the_run_labels() -> None:
    secret = ps.pull_secret_manifest(spec(), CREDS)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["name"] == ps.secret_name(spec()) and secret["metadata"]["namespace"] == "team-a"
    labels = secret["metadata"]["labels"]
    assert labels["dok.dev/identifier"] == ID
    assert labels["app.kubernetes.io/managed-by"] == "dok"
    assert labels["app.kubernetes.io/component"] == "pull-secret"
    entry = decoded(secret)["auths"]["127.0.0.1:5000"]
    assert base64.b64decode(entry["auth"]).decode() == f"dok:{PASSWORD}"
    assert entry["username"] == "dok"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_the_secret_conforms_to_the_schemas(version: str) -> None:
    assert schema_errors(ps.pull_secret_manifest(spec(), CREDS), version) == []


def test_the_job_names_the_secret_and_never_holds_the_password() -> None:
    with_secret = ps.with_pull_secret(spec(image_pull_secrets=("regcred",), create_pull_secret=True))
    manifest = job_manifest(with_secret)
    pulls = manifest["spec"]["template"]["spec"]["imagePullSecrets"]
    assert pulls == [{"name": ps.secret_name(with_secret)}, {"name": "regcred"}]
    assert PASSWORD not in json.dumps(manifest)
    assert base64.b64encode(f"dok:{PASSWORD}".encode()).decode() not in json.dumps(manifest)


def test_create_pull_secret_is_a_flag() -> None:
    assert spec(create_pull_secret=True).create_pull_secret is True
    with pytest.raises(RunSettingError, match="create_pull_secret='yes': must be true or false"):
        spec(create_pull_secret="yes")
    assert "DOK_CREATE_PULL_SECRET" not in spec(create_pull_secret=True).to_env()  # Job manifest side only


def test_credentials_given_then_environment_then_docker_config() -> None:
    auth = base64.b64encode(b"cfg-user:cfg-pw").decode()
    config = {"auths": {"127.0.0.1:5000": {"auth": auth}}}
    env = {"DOK_REGISTRY_USERNAME": "env-user", "DOK_REGISTRY_PASSWORD": "env-pw"}
    assert ps.resolve_credentials(IMAGE, given=CREDS, environ=env, docker_config=config).username == "dok"
    assert ps.resolve_credentials(IMAGE, environ=env, docker_config=config) == ps.RegistryCredentials(
        registry="127.0.0.1:5000", username="env-user", password="env-pw")
    assert ps.resolve_credentials(IMAGE, environ={}, docker_config=config) == ps.RegistryCredentials(
        registry="127.0.0.1:5000", username="cfg-user", password="cfg-pw")
    hub = {"auths": {"https://index.docker.io/v1/": {"username": "u", "password": "p"}}}
    assert ps.resolve_credentials("team/x:1", environ={}, docker_config=hub).registry == "docker.io"


def test_credentials_read_from_docker_config_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://127.0.0.1:5000": {
        "auth": base64.b64encode(b"file-user:file-pw").decode()}}}))
    found = ps.resolve_credentials(IMAGE, environ={"DOCKER_CONFIG": str(tmp_path)})
    assert (found.username, found.password) == ("file-user", "file-pw")


def test_no_credentials_is_a_configuration_error_naming_the_registry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        ps.resolve_credentials(IMAGE, environ={"DOCKER_CONFIG": str(tmp_path)})
    assert "127.0.0.1:5000" in info.value.message and "DOK_REGISTRY_USERNAME" in info.value.hint
    assert info.value.exit_code == EXIT_USAGE


def test_the_job_becomes_the_owner() -> None:
    owned = ps.with_owner(ps.pull_secret_manifest(spec(), CREDS),
                          {"metadata": {"name": "dok-fanout-0f8fad5b", "uid": "u-1"}})
    assert owned["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "dok-fanout-0f8fad5b", "uid": "u-1"}]


class RecordingKube:
    """Records the launcher's calls; `refuse` = verbs on secrets the caller lacks; `fail_job` = Job create fails."""

    default_namespace = "default"

    def __init__(self, *, refuse: tuple[str, ...] = (), fail_job: bool = False) -> None:
        self.refuse = refuse
        self.fail_job = fail_job
        self.calls: list[tuple[str, str]] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def can_i(self, access: Any) -> tuple[bool, str]:
        return (not (access.resource == "secrets" and access.verb in self.refuse)), ""

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        self.calls.append(("create", kind))
        if kind == "Job" and self.fail_job:
            raise Conflict(f"Job {name} exists")
        created = {**manifest, "metadata": {**manifest["metadata"], "uid": f"uid-{name}"}}
        self.objects[(kind, name)] = created
        return created

    def read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("replace", manifest["kind"]))
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest
        return manifest

    def delete(self, kind: str, namespace: str, name: str, **_kw: Any) -> bool:
        self.calls.append(("delete", kind))
        return self.objects.pop((kind, name), None) is not None


def run(kube: RecordingKube, **kw: Any) -> Any:
    env = DaskOnKubernetesEnvironment(base_image="dok-base:bookworm-py3.11")
    return execute(env, kube=kube, namespace="team-a", identifier=ID, flow_name="fanout", setup=False,
                   image=IMAGE, create_pull_secret=True, registry_credentials=CREDS, **kw)


def test_execute_creates_the_secret_before_the_job_and_hands_it_to_the_job() -> None:
    kube = RecordingKube()
    run(kube)
    assert kube.calls == [("create", "Secret"), ("create", "Job"), ("replace", "Secret")]
    job_obj = next(o for (kind, _), o in kube.objects.items() if kind == "Job")
    secret = next(o for (kind, _), o in kube.objects.items() if kind == "Secret")
    assert job_obj["spec"]["template"]["spec"]["imagePullSecrets"][0] == {"name": secret["metadata"]["name"]}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job_obj["metadata"]["uid"]


def test_missing_secret_rights_create_nothing() -> None:
    kube = RecordingKube(refuse=("create", "delete"))
    with pytest.raises(PermissionDenied) as info:
        run(kube)
    assert "create, delete secrets" in info.value.message and kube.calls == []


def test_a_job_that_cannot_be_created_takes_its_secret_along() -> None:
    kube = RecordingKube(fail_job=True)
    with pytest.raises(Conflict):
        run(kube)
    assert kube.calls == [("create", "Secret"), ("create", "Job"), ("delete", "Secret")] and not kube.objects


def test_without_the_flag_no_secret_is_made() -> None:
    kube = RecordingKube()
    env = DaskOnKubernetesEnvironment(base_image="dok-base:bookworm-py3.11")
    execute(env, kube=kube, namespace="team-a", identifier=ID, flow_name="fanout", setup=False, image=IMAGE)
    assert kube.calls == [("create", "Job")]


def test_cleanup_sweeps_the_runs_pull_secret() -> None:
    kube = FakeKube([([job()], [])])
    kube.secrets = [ps.pull_secret_manifest(spec(), CREDS)]
    handle = RunHandle(kube=kube, identifier=ID, namespace="team-a", job_name="dok-fanout-0f8fad5b",
                       flow_name="fanout")
    assert handle.cleanup(timeout=5) == []
    assert kube.deleted_secrets == [ps.secret_name(spec())] and kube.secrets == []
