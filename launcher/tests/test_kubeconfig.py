"""Which kubeconfig is used: --kubeconfig > KUBECONFIG > ~/.kube/config > the local cluster's; and a
kubeconfig of the local cluster is refused at once (exit 3, no connection) while that cluster is down."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dok.launcher.exceptions import ClusterUnreachable, ConfigError
from dok.launcher.kubeconfig import (KubeconfigChoice, address_is_local, check_local_cluster, local_cluster_kubeconfig,
                                     local_cluster_server, resolve_kubeconfig, server_of)


@pytest.fixture
def files(tmp_path):
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    state = tmp_path / "state"
    state.mkdir()
    flag = tmp_path / "flag.yaml"
    env_file = tmp_path / "env.yaml"
    for p in (flag, env_file):
        p.write_text("x")
    return dict(home=home, state=state, flag=flag, env=env_file)


def test_flag_wins(files):
    choice = resolve_kubeconfig(str(files["flag"]), {"KUBECONFIG": str(files["env"]), "HOME": str(files["home"])})
    assert choice.path == files["flag"] and choice.source == "flag"


def test_flag_relative_to_working_directory(files):
    choice = resolve_kubeconfig("flag.yaml", {"BUILD_WORKING_DIRECTORY": str(files["flag"].parent)})
    assert choice.path == files["flag"]


def test_missing_flag_file(files):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_kubeconfig(str(files["flag"]) + ".nope", {})


def test_env_var(files):
    choice = resolve_kubeconfig(None, {"KUBECONFIG": f"/nope:{files['env']}", "HOME": str(files["home"])})
    assert choice.path == files["env"] and choice.source == "KUBECONFIG"


def test_env_var_names_nothing(files):
    with pytest.raises(ConfigError, match="KUBECONFIG"):
        resolve_kubeconfig(None, {"KUBECONFIG": "/nope/a:/nope/b"})


def test_home_config(files):
    (files["home"] / ".kube" / "config").write_text("x")
    choice = resolve_kubeconfig(None, {"HOME": str(files["home"]), "DOK_CLUSTER_STATE": str(files["state"])})
    assert choice.source == "home"


def test_local_cluster_when_nothing_else(files):
    env = {"HOME": str(files["home"]), "DOK_CLUSTER_STATE": str(files["state"])}
    (files["state"] / "admin.kubeconfig").write_text("x")
    choice = resolve_kubeconfig(None, env)
    assert choice.source == "local-cluster" and choice.path == local_cluster_kubeconfig(env)


def test_nothing_configured_is_infra_error_with_hint(files):
    env = {"HOME": str(files["home"]), "DOK_CLUSTER_STATE": str(files["state"])}
    with pytest.raises(ClusterUnreachable) as info:
        resolve_kubeconfig(None, env)
    assert info.value.exit_code == 3
    assert "tools/bazel run //tools:cluster -- up" in info.value.hint


def test_default_local_path():
    assert str(local_cluster_kubeconfig({})) == "/var/lib/dok-cluster/admin.kubeconfig"


# ---- a down local cluster is refused before any connection ---------------------------------------------
LOCAL = "https://10.200.0.1:6443"


def _kubeconfig_doc(server: str, *, extra_context: str | None = None) -> dict:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "dok",
           "clusters": [{"name": "dok", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
           "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": "dok", "context": {"cluster": "dok", "user": "u"}}]}
    if extra_context:
        doc["clusters"].append({"name": "other", "cluster": {"server": extra_context}})
        doc["contexts"].append({"name": "other", "context": {"cluster": "other", "user": "u"}})
    return doc


class FakeAddresses:
    """The addresses 'on this machine'; records what was asked."""

    def __init__(self, *local: str) -> None:
        self.local = set(local)
        self.asked: list[str] = []

    def __call__(self, host: str) -> bool:
        self.asked.append(host)
        return host in self.local


def _choice(source: str = "local-cluster") -> KubeconfigChoice:
    return KubeconfigChoice(path=Path("/state/admin.kubeconfig"), source=source)  # type: ignore[arg-type]


def test_local_cluster_down_is_refused_with_exit_3_and_the_up_hint():
    with pytest.raises(ClusterUnreachable) as info:
        check_local_cluster(_choice(), LOCAL, local_server=LOCAL, is_local=FakeAddresses())
    assert info.value.exit_code == 3
    assert "the local cluster is down" in info.value.message and LOCAL in info.value.message
    assert info.value.hint == "start it: tools/bazel run //tools:cluster -- up"


def test_local_cluster_up_passes():
    fake = FakeAddresses("10.200.0.1")
    check_local_cluster(_choice(), LOCAL, local_server=LOCAL, is_local=fake)
    assert fake.asked == ["10.200.0.1"]


@pytest.mark.parametrize("source", ["flag", "KUBECONFIG", "home"])
def test_any_kubeconfig_pointing_at_the_local_node_is_refused_when_down(source):
    with pytest.raises(ClusterUnreachable, match="local cluster is down"):
        check_local_cluster(_choice(source), "https://10.200.0.1:6443/", local_server=LOCAL, is_local=FakeAddresses())


def test_other_clusters_are_not_checked():
    fake = FakeAddresses()
    check_local_cluster(_choice("home"), "https://k8s.example.org:443", local_server=LOCAL, is_local=fake)
    check_local_cluster(_choice("flag"), "https://10.200.0.2:6443", local_server=LOCAL, is_local=fake)
    check_local_cluster(_choice("flag"), "https://10.200.0.1:6443", local_server=None, is_local=fake)
    check_local_cluster(KubeconfigChoice(path=None, source="in-cluster"), "https://10.96.0.1:443",
                        local_server=None, is_local=fake)
    assert fake.asked == []


def test_local_cluster_source_is_checked_even_without_a_readable_local_server():
    with pytest.raises(ClusterUnreachable):
        check_local_cluster(_choice(), LOCAL, local_server=None, is_local=FakeAddresses())


def test_server_of_follows_the_context():
    doc = _kubeconfig_doc(LOCAL, extra_context="https://other:1")
    assert server_of(doc) == LOCAL
    assert server_of(doc, "other") == "https://other:1"
    assert server_of({"clusters": []}) is None
    assert server_of("not a dict") is None


def test_local_cluster_server_read_from_the_state_dir(files):
    env = {"DOK_CLUSTER_STATE": str(files["state"])}
    assert local_cluster_server(env) is None  # never brought up
    (files["state"] / "admin.kubeconfig").write_text(json.dumps(_kubeconfig_doc(LOCAL)))
    assert local_cluster_server(env) == LOCAL
    (files["state"] / "admin.kubeconfig").write_text("{broken")
    assert local_cluster_server(env) is None


def test_address_is_local_uses_no_network():
    assert address_is_local("127.0.0.1")
    assert not address_is_local("203.0.113.77")  # TEST-NET-3: never an address of this machine


def test_kube_connect_refuses_a_down_local_cluster_at_once(files):
    from dok.launcher.kube import Kube

    server = "https://203.0.113.77:6443"  # stands for the node IP of a down cluster: not on this machine
    (files["state"] / "admin.kubeconfig").write_text(json.dumps(_kubeconfig_doc(server)))
    env = {"HOME": str(files["home"]), "DOK_CLUSTER_STATE": str(files["state"])}
    import kubernetes.client  # noqa: F401 - imported before the clock starts (slow on a busy machine)
    import kubernetes.config  # noqa: F401

    start = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="local cluster is down"):
        Kube.connect(environ=env)
    copy = files["flag"]
    copy.write_text(json.dumps(_kubeconfig_doc(server)))
    with pytest.raises(ClusterUnreachable, match="local cluster is down"):
        Kube.connect(kubeconfig=str(copy), environ=env)
    assert time.monotonic() - start < 5  # no connect attempt, no retries: the bind check answers at once


def test_kube_connect_accepts_a_local_cluster_whose_address_is_here(files):
    from dok.launcher.kube import Kube

    (files["state"] / "admin.kubeconfig").write_text(json.dumps(_kubeconfig_doc("https://127.0.0.1:6443")))
    kube = Kube.connect(environ={"HOME": str(files["home"]), "DOK_CLUSTER_STATE": str(files["state"])})
    assert kube.choice.source == "local-cluster" and kube.host == "https://127.0.0.1:6443"


def test_cli_list_on_a_down_local_cluster_exits_3_with_the_up_hint(files, monkeypatch):
    import io

    from dok.launcher.cli import main

    (files["state"] / "admin.kubeconfig").write_text(json.dumps(_kubeconfig_doc("https://203.0.113.77:6443")))
    monkeypatch.setenv("HOME", str(files["home"]))
    monkeypatch.setenv("DOK_CLUSTER_STATE", str(files["state"]))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    out, err = io.StringIO(), io.StringIO()
    code = main(["list"], out=out, err=err)
    assert code == 3
    assert "dok: error: the local cluster is down" in err.getvalue()
    assert "hint: start it: tools/bazel run //tools:cluster -- up" in err.getvalue()
