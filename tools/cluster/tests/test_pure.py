"""Unit tests of the local provider's pure parts: rendered configs, component argv, DNS records, cache key."""

from __future__ import annotations

import json
from pathlib import Path

from dok_cluster import configs, dns_watcher, kube_build, settings
from dok_cluster.components import NAMES, components
from dok_cluster.paths import Paths


def _pki(tmp_path: Path) -> Path:
    pki = tmp_path / "pki"
    pki.mkdir()
    for name in ("ca.crt", "admin.crt", "admin.key"):
        (pki / name).write_text(f"PEM {name}\n")
    return pki


def test_kubeconfig_embeds_ca_and_client_cert(tmp_path: Path) -> None:
    doc = json.loads(configs.kubeconfig(pki=_pki(tmp_path), identity="admin", user="dok-admin"))
    assert doc["clusters"][0]["cluster"]["server"] == settings.API_URL
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"]
    assert doc["users"][0]["user"]["client-key-data"]
    assert doc["current-context"] == "dok"


def test_kubelet_config_keeps_host_safe(tmp_path: Path) -> None:
    doc = json.loads(configs.kubelet_config(pki=tmp_path, state=tmp_path))
    assert doc["oomScoreAdj"] == 0
    assert doc["readOnlyPort"] == 0
    assert doc["authentication"]["anonymous"]["enabled"] is False
    assert doc["imageGCHighThresholdPercent"] == 100
    assert doc["clusterDNS"] == [settings.DNS_SERVICE_IP]


def test_cni_chain_is_bridge_portmap_firewall(tmp_path: Path) -> None:
    doc = json.loads(configs.cni_conflist(ipam_dir=tmp_path))
    assert [p["type"] for p in doc["plugins"]] == ["bridge", "portmap", "firewall"]
    assert doc["plugins"][0]["ipam"]["ranges"] == [[{"subnet": settings.POD_CIDR}]]


def test_components_in_order_and_kubelet_never_asks_aws(tmp_path: Path) -> None:
    comps = components(Paths(cache=tmp_path, state=tmp_path), tmp_path / "bin", tmp_path / "w.py")
    assert tuple(c.name for c in comps) == NAMES
    kubelet = next(c for c in comps if c.name == "kubelet")
    assert kubelet.env["AWS_EC2_METADATA_DISABLED"] == "true"
    apiserver = next(c for c in comps if c.name == "kube-apiserver")
    assert "--anonymous-auth=false" in apiserver.argv
    assert "--authorization-mode=Node,RBAC" in apiserver.argv


def test_bootstrap_objects_point_dns_at_the_node() -> None:
    objs = {o["kind"]: o for o in configs.bootstrap_objects()}
    assert objs["Service"]["spec"]["clusterIP"] == settings.DNS_SERVICE_IP
    assert objs["Endpoints"]["subsets"][0]["addresses"] == [{"ip": settings.NODE_IP}]


def test_dns_records_for_clusterip_and_headless_services() -> None:
    services = {"items": [
        {"metadata": {"name": "web", "namespace": "a"}, "spec": {"clusterIP": "10.96.0.20"}},
        {"metadata": {"name": "db", "namespace": "b"}, "spec": {"clusterIP": "None"}},
    ]}
    endpoints = {"items": [
        {"metadata": {"name": "web", "namespace": "a"}, "subsets": [{"addresses": [{"ip": "10.244.0.9"}]}]},
        {"metadata": {"name": "db", "namespace": "b"},
         "subsets": [{"addresses": [{"ip": "10.244.0.5", "hostname": "db-0"}, {"ip": "10.244.0.6"}]}]},
    ]}
    lines = dns_watcher.render(services, endpoints, "cluster.local").splitlines()
    assert "10.96.0.20 web.a.svc.cluster.local" in lines
    assert "10.244.0.9 web.a.svc.cluster.local" not in lines  # ClusterIP services resolve to the ClusterIP
    assert "10.244.0.5 db.b.svc.cluster.local" in lines
    assert "10.244.0.6 db.b.svc.cluster.local" in lines
    assert "10.244.0.5 db-0.db.b.svc.cluster.local" in lines


def test_cache_key_names_source_version_and_patch_hash() -> None:
    key = kube_build.cache_key()
    assert key.startswith(kube_build.SOURCE_VERSION + "-")
    assert len(key.rsplit("-", 1)[1]) == 12
    assert [p.name for p in kube_build.patch_files()] == [
        "0001-reflect2-v1.0.2.patch", "0002-dockershim-oom-score-adj-clamp.patch"]
