"""e2e: a run whose image exists only in a registry that requires auth.

The registry is a container (testcontainers, tools/registry/registry_container.py: Debian's docker-registry
FROM the project's base image, htpasswd auth, published on 127.0.0.1). `dok build --push` pushes the flow's
image with the credentials; the tag is then removed from dockerd — which the local cluster's kubelet shares —
so the kubelet has to pull it from the registry (127.0.0.0/8 registries are plain-HTTP-allowed by dockerd).

- `dok run --image REF --create-pull-secret` (credentials from DOK_REGISTRY_USERNAME/PASSWORD) creates the
  run's dockerconfigjson Secret, labelled with the run's identifier; the job pod names it in
  imagePullSecrets; the kubelet pulls the image; the flow succeeds (exit 0) and nothing of the run is left,
  the Secret included. The password is in neither the image nor the Job.
- The same with a wrong password: the pull fails fast (exit 3) naming ErrImagePull/ImagePullBackOff and the
  registry's 401, and nothing is left.

Needs a cluster whose nodes reach the registry at 127.0.0.1 (the local provider); elsewhere (kind) set
DOK_E2E_REGISTRY_PULLS=skip.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time

import docker
import docker.errors
import pytest

from e2e import helpers
from e2e.reliability_flows import (COMPONENT_LABEL, IDENT_LABEL, Background, dok, dok_env, flow_file, identifier_of,
                                   wait_gone)

if os.environ.get("DOK_E2E_REGISTRY_PULLS") == "skip":
    pytest.skip("DOK_E2E_REGISTRY_PULLS=skip: the nodes cannot reach a registry on 127.0.0.1",
                allow_module_level=True)

REG_USER = "dok-e2e"
REG_PASSWORD = "pw-" + secrets.token_hex(8)

FLOW = '''
import time
from dok.core import Flow, task

@task
def numbers():
    return [1, 2, 3]

@task
def slow_double(x):
    time.sleep(3)
    return 2 * x

@task
def total(xs):
    return sum(xs)

with Flow("e2e-registry-pull") as flow:
    total(slow_double.map(numbers()))
'''


def _registry_container():
    try:
        import registry_container
    except ImportError:  # outside Bazel
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "registry"))
        import registry_container
    return registry_container


@pytest.fixture(scope="module")
def auth_registry(base_image):
    with _registry_container().running_registry(user=REG_USER, password=REG_PASSWORD, base_image=base_image) as reg:
        yield reg


@pytest.fixture(scope="module")
def flow_path(tmp_path_factory) -> str:
    return flow_file(tmp_path_factory.mktemp("registry-flow"), FLOW)


@pytest.fixture(scope="module")
def pushed_image(cluster, auth_registry, flow_path):
    """The flow's image, pushed to the auth registry with the credentials; its tag removed at the end."""
    env = dok_env(cluster, DOK_REGISTRY_USERNAME=REG_USER, DOK_REGISTRY_PASSWORD=REG_PASSWORD)
    proc = dok(cluster, "build", flow_path, "--registry", auth_registry.url, "--push", env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    reference = proc.stdout.strip().splitlines()[-1]
    assert reference.startswith(auth_registry.url + "/")
    yield reference
    _untag(reference)


def _untag(reference: str) -> None:
    try:
        docker.from_env().api.remove_image(reference, force=True, noprune=True)
    except docker.errors.NotFound:
        pass


def _present(reference: str) -> bool:
    try:
        docker.from_env().images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def test_the_image_is_pulled_through_the_runs_own_pull_secret(cluster, namespace, auth_registry, pushed_image,
                                                              flow_path):
    config = json.dumps(docker.from_env().api.inspect_image(pushed_image))
    assert REG_PASSWORD not in config  # the credentials are not baked into the image
    _untag(pushed_image)
    assert not _present(pushed_image)  # only the registry has it now

    env = dok_env(cluster, DOK_REGISTRY_USERNAME=REG_USER, DOK_REGISTRY_PASSWORD=REG_PASSWORD)
    run = Background(cluster, "run", flow_path, "--image", pushed_image, "-n", namespace, "--max-workers", "2",
                     "--create-pull-secret", "--rm", env=env)
    try:
        identifier = run.wait_identifier()
        sel = {IDENT_LABEL: identifier}
        secrets_ = helpers.list_by_label(cluster, "secrets", sel, namespace=namespace)
        assert len(secrets_) == 1, [s.metadata.name for s in secrets_]
        secret = secrets_[0]
        assert secret.type == "kubernetes.io/dockerconfigjson"
        assert secret.metadata.labels[COMPONENT_LABEL] == "pull-secret"
        assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "dok"
        auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
        assert list(auths) == [auth_registry.url]
        assert [o.kind for o in secret.metadata.owner_references or []] == ["Job"]
        job = helpers.list_by_label(cluster, "jobs", sel, namespace=namespace)[0]
        pod_spec = job.spec.template.spec
        assert [s.name for s in pod_spec.image_pull_secrets] == [secret.metadata.name]
        assert REG_PASSWORD not in json.dumps(cluster.api_client.sanitize_for_serialization(job))
        code = run.finish(timeout=420)
    finally:
        run.kill()
    assert code == 0, run.stderr
    assert "Success" in run.stdout and "'total': 12" in run.stdout
    assert _present(pushed_image)  # the kubelet pulled it back from the registry
    pulled = [e for e in cluster.core.list_namespaced_event(namespace).items
              if e.reason == "Pulled" and pushed_image in (e.message or "")]
    assert pulled, "no 'Pulled' event for the image"
    wait_gone(cluster, namespace, identifier)  # Job, pods and the pull Secret


def test_a_wrong_password_fails_fast_naming_the_pull_error(cluster, namespace, pushed_image, flow_path):
    _untag(pushed_image)
    env = dok_env(cluster, DOK_REGISTRY_USERNAME=REG_USER, DOK_REGISTRY_PASSWORD="not-the-password")
    started = time.monotonic()
    proc = dok(cluster, "run", flow_path, "--image", pushed_image, "-n", namespace, "--create-pull-secret", env=env,
               timeout=300)
    took = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert "ErrImagePull" in proc.stderr or "ImagePullBackOff" in proc.stderr
    assert "401" in proc.stderr or "unauthorized" in proc.stderr.lower(), proc.stderr
    assert pushed_image in proc.stderr
    assert took < 120, f"took {took:.0f}s to report the pull error"
    assert not _present(pushed_image)
    wait_gone(cluster, namespace, identifier_of(proc.stderr))
