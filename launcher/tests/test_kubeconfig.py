"""Which kubeconfig is used: --kubeconfig > KUBECONFIG > ~/.kube/config > the local cluster's."""

from __future__ import annotations

import pytest

from dok.launcher.exceptions import ClusterUnreachable, ConfigError
from dok.launcher.kubeconfig import local_cluster_kubeconfig, resolve_kubeconfig


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
