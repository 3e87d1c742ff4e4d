"""The kind provider's command lines (pure): what hosted CI (.github/workflows/e2e-kind.yml) runs."""

from __future__ import annotations

from pathlib import Path

from dok_cluster import kind


def test_create_waits_and_pins_the_node_image() -> None:
    assert kind.create_command(cluster="dok", image="kindest/node:v1.30.0") == [
        "kind", "create", "cluster", "--name", "dok", "--wait", "180s", "--image", "kindest/node:v1.30.0"]


def test_create_without_an_image_lets_kind_choose() -> None:
    command = kind.create_command(cluster="ci", wait="300s")
    assert command == ["kind", "create", "cluster", "--name", "ci", "--wait", "300s"] and "--image" not in command


def test_every_command_names_the_cluster() -> None:
    for command in (kind.delete_command(cluster="ci"), kind.kubeconfig_command(cluster="ci"),
                    kind.load_image_command("img:1", cluster="ci")):
        assert command[0] == "kind" and command[command.index("--name") + 1] == "ci"
    assert kind.load_image_command("img:1", cluster="ci")[:4] == ["kind", "load", "docker-image", "img:1"]
    assert kind.delete_command(cluster="ci")[:3] == ["kind", "delete", "cluster"]


def test_the_kubeconfig_is_printed_not_merged_into_the_users() -> None:
    command = kind.kubeconfig_command(cluster="ci")
    assert command[:3] == ["kind", "get", "kubeconfig"] and "export" not in command


def test_nodes_ready_uses_the_clusters_own_kubeconfig() -> None:
    command = kind.nodes_ready_command(Path("/state/kind-dok.kubeconfig"), timeout="90s")
    assert command == ["kubectl", "--kubeconfig", "/state/kind-dok.kubeconfig", "wait", "--for=condition=Ready",
                       "nodes", "--all", "--timeout=90s"]
