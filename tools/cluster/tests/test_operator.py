"""The operator install's pure parts: Dockerfile, controller manifests, CRD files from the pinned package."""

from __future__ import annotations

from dok_cluster import operator


def test_dockerfile_pins_versions_and_adds_passwd_entry() -> None:
    text = operator.dockerfile(base="dok-base:x", versions={"kopf": "1.2", "dask-kubernetes": "3.4"})
    assert text.startswith("FROM dok-base:x\n")
    assert "pip install dask-kubernetes==3.4 kopf==1.2" in text
    assert "dask:x:1000:1000:" in text and "USER 1000" in text
    assert '"--standalone"' in text


def test_controller_manifests_never_pull_and_bind_their_role() -> None:
    objs = operator.controller_manifests(image="img:1")
    kinds = [o["kind"] for o in objs]
    assert kinds == ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"]
    container = objs[-1]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "img:1" and container["imagePullPolicy"] == "Never"
    binding = objs[3]
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": operator.NAME, "namespace": operator.NAMESPACE}
    resources = {r for rule in objs[2]["rules"] for r in rule["resources"]}
    assert {"daskclusters", "daskworkergroups", "deployments", "pods"} <= resources


def test_crds_come_from_the_pinned_package() -> None:
    names = {p.stem for p in operator.crd_files()}
    assert names == {"daskautoscaler", "daskcluster", "daskjob", "daskworkergroup"}
    assert operator.image_tag(operator.pinned_versions()).startswith("dok-dask-operator:")
