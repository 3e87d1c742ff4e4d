"""pytest fixtures for dok's end-to-end tests against a real Kubernetes cluster (tools/cluster).

Fixtures (reuse them from any e2e/test_*.py):
- `cluster` (session) -> `e2e.helpers.Cluster`: `.kubeconfig` (Path, also exported as $KUBECONFIG for
  code under test), `.api_client` (kubernetes.client.ApiClient), `.core` / `.batch` / `.rbac` (API objects),
  `.load_image(tag)`, `.server_version`, `.started_by_session`. Brought up with `tools/cluster ... up` when it is not running
  (the first time this builds Kubernetes: 10-20 min). At the end of the session it is torn down only if this
  session's `up` started it, unless `--keep-cluster` or DOK_E2E_KEEP_CLUSTER=1. A cluster that was already
  up (or that another session started meanwhile) is always left running.
  DOK_E2E_KUBECONFIG=PATH targets another cluster instead (e.g. kind in hosted CI: tools/cluster
  --provider kind kubeconfig): it is used as it is, never brought up or torn down by the session; test images
  still go to it through `cluster load-image` (kind: `kind load docker-image`).
- `namespace` (function) -> str: a fresh namespace `e2e-<test>-<random>` whose default ServiceAccount
  exists (with its token Secret on Kubernetes < 1.24, so pods can start at once); deleted afterwards
  (its pods first, with no grace period). Keep it with DOK_E2E_KEEP_NAMESPACES=1.
- `dask_operator` (session) -> None: the dask-kubernetes operator (CRDs + controller) is installed and running;
  `tools/cluster operator install` when it is not, and left installed afterwards (other sessions may use it).
  `backend` (parametrized "pods"/"operator"): a worker backend, with the operator ensured for "operator".
- `image_builder` (session) -> callable `(tag, files={name: content}, dockerfile_tail="") -> tag`:
  a test image FROM the project base image `dok-base:bookworm-py3.11` (built if missing), files copied
  to /opt/test/, loaded into the cluster. Pods must use `imagePullPolicy: Never` (helpers.pod_manifest does).
Helpers (`from e2e import helpers`): `list_by_label(cluster, "pods", {"k": "v"}, namespace=ns)`,
`delete_by_label(...)`, `wait_for(what, probe)`, `wait_pod_phase`, `wait_pod_ip`, `wait_job_complete`,
`pod_logs`, `pod_manifest`, `job_manifest`, `service_manifest`; `from e2e import helpers_images` for
`ensure_base_image()` / `build_image()`.
Bazel: e2e targets take `deps = [":harness"]` (it carries `//tools/cluster:cluster` as data), `size = "large"`,
`tags = E2E_TAGS`, and are listed in `//e2e:everything` (see e2e/BUILD).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

if str(Path(__file__).parent.parent) not in sys.path:  # make `e2e.helpers` importable outside Bazel too
    sys.path.insert(0, str(Path(__file__).parent.parent))

from kubernetes import client as k8s  # noqa: E402

from e2e import helpers, helpers_images  # noqa: E402

EXTERNAL_KUBECONFIG = "DOK_E2E_KUBECONFIG"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--keep-cluster", action="store_true", default=False,
                     help="leave the cluster running after the session (also: DOK_E2E_KEEP_CLUSTER=1)")


@pytest.fixture(scope="session", autouse=True)
def base_image() -> str:
    """The Debian-made base image every test flow builds FROM (made once, ~2 min, when dockerd lacks it): without
    it the builder would ask Docker Hub, which this machine cannot reach."""
    return helpers_images.ensure_base_image(os.environ.get("DOK_BASE_IMAGE", helpers_images.BASE_IMAGE))


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[helpers.Cluster]:
    started_here = False
    external = os.environ.get(EXTERNAL_KUBECONFIG)
    if external:  # another cluster (e.g. kind in hosted CI): used as it is, never brought up or down here
        if not Path(external).is_file():
            pytest.fail(f"{EXTERNAL_KUBECONFIG}={external}: no such kubeconfig file")
    elif not helpers.cluster_is_up():
        started = time.monotonic()
        proc = helpers.run_cluster_tool("up", capture=True)
        if proc.returncode != 0:
            pytest.fail("`tools/cluster up` failed (see its output above)")
        # "started" only when this `up` started it (another session may have done so meanwhile).
        started_here = proc.stdout.strip().splitlines()[-1:] == ["started"]
        print(f"e2e: cluster up after {time.monotonic() - started:.0f}s ({proc.stdout.strip()})", file=sys.stderr)
    kubeconfig = Path(external) if external else helpers.kubeconfig_path()
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(kubeconfig)
    handle = helpers.Cluster.connect(kubeconfig, started_by_session=started_here)
    try:
        yield handle
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
        keep = request.config.getoption("--keep-cluster") or os.environ.get("DOK_E2E_KEEP_CLUSTER") == "1"
        if handle.started_by_session and not keep:
            helpers.run_cluster_tool("down")


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"e2e-{base}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(cluster: helpers.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _namespace_name(request.node.name)
    core = cluster.core
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name, "labels": {"dok.dev/e2e": "true"}}})

    helpers.wait_for(f"the default ServiceAccount of {name} (and its token)",
                     lambda: cluster.service_account_ready(name), timeout=60)
    try:
        yield name
    finally:
        if os.environ.get("DOK_E2E_KEEP_NAMESPACES") != "1":
            try:
                core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
                core.delete_namespace(name, body=k8s.V1DeleteOptions(propagation_policy="Background"))
            except k8s.ApiException as err:
                if err.status != 404:
                    raise


@pytest.fixture(scope="session")
def image_builder(cluster: helpers.Cluster) -> Callable[..., str]:
    def build(tag: str, files: dict[str, str | bytes], dockerfile_tail: str = "") -> str:
        return helpers_images.build_test_image(cluster, tag, files=files, dockerfile_tail=dockerfile_tail)
    return build


@pytest.fixture(scope="session")
def dask_operator(cluster: helpers.Cluster) -> None:
    if helpers.run_cluster_tool("operator", "status", capture=True).returncode == 0:
        return
    proc = helpers.run_cluster_tool("operator", "install", capture=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"`tools/cluster operator install` failed: {proc.stdout}{proc.stderr}")


@pytest.fixture(params=["pods", "operator"])
def backend(request: pytest.FixtureRequest) -> str:
    """Both worker backends (docs/operator.md); "operator" makes sure the operator runs."""
    if request.param == "operator":
        request.getfixturevalue("dask_operator")
    return str(request.param)
