"""Pod templates: the forms a template may take, and the merge rules (what dok owns, how the rest merges)."""

from __future__ import annotations

from typing import Any

import pytest

from dok.core.podsecurity import restricted_container_security_context, restricted_pod_security_context
from dok.core.podtemplate import LOOSEN_ANNOTATION, PodTemplateError, loosened, merge_pod_template, pod_template


def dok_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "w-0", "namespace": "ns", "labels": {"dok.dev/identifier": "abc"},
                     "ownerReferences": [{"kind": "Pod", "name": "job"}]},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": restricted_pod_security_context(),
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "containers": [{"name": "worker", "image": "img:1", "command": ["dask", "worker"],
                            "env": [{"name": "DOK_IDENTIFIER", "value": "abc"}],
                            "securityContext": restricted_container_security_context(),
                            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "2Gi"}},
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
        },
    }


def merge(template: Any) -> dict[str, Any]:
    return merge_pod_template(dok_pod(), pod_template(template, setting="worker_template"), container="worker",
                              setting="worker_template")


# -- forms ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", [
    {"containers": [{"name": "worker", "env": [{"name": "A", "value": "1"}]}]},                    # a pod spec
    {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"env": [{"name": "A", "value": "1"}]}]}},
    {"kind": "PodTemplate", "template": {"spec": {"containers": [{"env": [{"name": "A", "value": "1"}]}]}}},
    "containers:\n- name: worker\n  env:\n  - {name: A, value: '1'}\n",                             # YAML text
])
def test_every_form_adds_the_same_variable(form: Any) -> None:
    [container] = merge(form)["spec"]["containers"]
    assert container["env"] == [{"name": "DOK_IDENTIFIER", "value": "abc"}, {"name": "A", "value": "1"}]


@pytest.mark.parametrize("bad,words", [
    ("containers: [", "not valid YAML"),
    ("just text", "must be a pod"),
    ({"metadata": {"name": "mine"}, "spec": {}}, "metadata.name is set by dok"),
    ({"metadata": {"labels": {"a": 1}}, "spec": {}}, "metadata.labels must map strings"),
    ({"spec": {"volumes": {"name": "x"}}}, "spec.volumes must be a list"),
    ({"spec": {}, "status": {}}, "unknown top-level field(s) status"),
])
def test_bad_templates_are_refused_by_name(bad: Any, words: str) -> None:
    with pytest.raises(PodTemplateError) as info:
        pod_template(bad, setting="worker_template")
    assert words in info.value.message and info.value.message.startswith("worker_template: ")


# -- merging ----------------------------------------------------------------------------------------------
def test_labels_annotations_volumes_and_tolerations_add_up() -> None:
    pod = merge({"metadata": {"labels": {"team": "ml"}, "annotations": {"note": "x"}},
                 "spec": {"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "gpu", "operator": "Exists"}],
                          "volumes": [{"name": "data", "emptyDir": {}}],
                          "nodeSelector": {"pool": "gpu"},
                          "containers": [{"name": "worker",
                                          "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}})
    assert pod["metadata"]["labels"] == {"dok.dev/identifier": "abc", "team": "ml"}
    assert pod["metadata"]["annotations"] == {"note": "x"}
    assert pod["metadata"]["ownerReferences"] == [{"kind": "Pod", "name": "job"}]
    assert [t["key"] for t in pod["spec"]["tolerations"]] == ["a", "gpu"]          # no duplicate "a"
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["tmp", "data"]
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert pod["spec"]["containers"][0]["volumeMounts"][1] == {"name": "data", "mountPath": "/data"}


def test_a_sidecar_is_added_and_the_input_is_not_changed() -> None:
    base = dok_pod()
    pod = merge_pod_template(base, pod_template({"containers": [{"name": "proxy", "image": "proxy:1"}]},
                                                setting="t"), container="worker", setting="t")
    assert [c["name"] for c in pod["spec"]["containers"]] == ["worker", "proxy"]
    assert len(base["spec"]["containers"]) == 1


def test_an_extra_resource_adds_to_dok_resources() -> None:
    pod = merge({"containers": [{"name": "worker", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]})
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"memory": "2Gi", "nvidia.com/gpu": "1"}


@pytest.mark.parametrize("template,path,hint", [
    ({"containers": [{"name": "worker", "command": ["sh"]}]}, "spec.containers[worker].command is set by dok",
     "sidecar"),
    ({"containers": [{"image": "other:2"}]}, "spec.containers[worker].image is set by dok", "sidecar"),
    ({"restartPolicy": "Always"}, "spec.restartPolicy is 'Never' in dok's pod and 'Always'", "run setting"),
    ({"metadata": {"labels": {"dok.dev/identifier": "other"}}, "spec": {}}, "metadata.labels.dok.dev/identifier",
     "another key"),
    ({"containers": [{"resources": {"limits": {"memory": "8Gi"}}}]},
     "spec.containers[worker].resources.limits.memory is '2Gi'", "--worker-resources"),
    ({"containers": [{"env": [{"name": "DOK_IDENTIFIER", "value": "x"}]}]}, "env[DOK_IDENTIFIER].value", ""),
    ({"securityContext": {"runAsUser": 0}}, "spec.securityContext.runAsUser is 1000", LOOSEN_ANNOTATION),
    ({"containers": [{"securityContext": {"privileged": True}}]}, "securityContext.privileged is False",
     LOOSEN_ANNOTATION),
    ({"containers": [{"name": "side"}]}, "sidecar container 'side' needs image", ""),
    ({"containers": [{"env": []}, {"name": "worker"}]}, "2 containers would merge", ""),
])
def test_conflicts_name_the_field(template: Any, path: str, hint: str) -> None:
    with pytest.raises(PodTemplateError) as info:
        merge(template)
    assert path in info.value.message, info.value.message
    assert hint in (info.value.hint or "")


def test_loosening_the_security_context_on_purpose() -> None:
    template = {"metadata": {"annotations": {LOOSEN_ANNOTATION: "template"}},
                "spec": {"securityContext": {"runAsUser": 0, "runAsNonRoot": False},
                         "containers": [{"securityContext": {"readOnlyRootFilesystem": False}}]}}
    assert loosened(pod_template(template, setting="t"))
    pod = merge(template)
    assert pod["spec"]["securityContext"]["runAsUser"] == 0
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert not loosened(pod_template({"spec": {}}, setting="t")) and not loosened(None)


def test_no_template_is_a_copy() -> None:
    assert merge_pod_template(dok_pod(), None, container="worker", setting="t") == dok_pod()
