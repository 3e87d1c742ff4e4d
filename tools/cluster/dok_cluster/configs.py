"""Pure renderers for the local cluster's files: kubeconfigs, kubelet/kube-proxy configs, the CNI chain.

Each function returns text (JSON is valid YAML, and every consumer here reads YAML), so it is unit-tested
without a cluster.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from dok_cluster import settings


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(*, pki: Path, identity: str, user: str, server: str = settings.API_URL) -> str:
    """A kubeconfig with the CA and the identity's client certificate embedded (self-contained)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dok", "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(pki / f"{identity}.crt"),
            "client-key-data": _b64(pki / f"{identity}.key"),
        }}],
        "contexts": [{"name": "dok", "context": {"cluster": "dok", "user": user, "namespace": "default"}}],
        "current-context": "dok",
        "preferences": {},
    }
    return json.dumps(doc, indent=2) + "\n"


def kubelet_config(*, pki: Path, state: Path) -> str:
    doc: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": settings.NODE_IP,
        "port": settings.KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "oomScoreAdj": 0,  # a negative value needs CAP_SYS_RESOURCE, which root lacks here
        "clusterDNS": [settings.DNS_SERVICE_IP],
        "clusterDomain": settings.CLUSTER_DOMAIN,
        "podCIDR": settings.POD_CIDR,
        "imageGCHighThresholdPercent": 100,  # never delete images (the cluster shares the developer's dockerd)
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "maxPods": 110,
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
        "staticPodPath": "",
    }
    return json.dumps(doc, indent=2) + "\n"


def kube_proxy_config(*, config_dir: Path) -> str:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(config_dir / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "clusterCIDR": settings.CLUSTER_CIDR,
        "hostnameOverride": settings.NODE_NAME,
        "bindAddress": settings.NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{settings.NODE_IP}/32"],  # NodePorts only on the node address, never on eth0
        "oomScoreAdj": 0,
        # 0 = leave the host's conntrack sysctls alone
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return json.dumps(doc, indent=2) + "\n"


def cni_conflist(*, ipam_dir: Path) -> str:
    """bridge + portmap + firewall. firewall: dockerd sets FORWARD to DROP and br_netfilter sends bridged
    pod-to-pod traffic through FORWARD."""
    doc = {
        "cniVersion": "0.4.0",
        "name": settings.CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": settings.BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": settings.POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": "iptables"},
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def bootstrap_objects() -> list[dict[str, Any]]:
    """Objects `up` creates once the API answers: the DNS watcher's RBAC and the kube-dns Service."""
    dns_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "dok:cluster-dns"},
        "rules": [{"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": ["get", "list", "watch"]}],
    }
    dns_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "dok:cluster-dns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "dok:cluster-dns"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dok:cluster-dns"}],
    }
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "dok-dnsmasq"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
        "spec": {"clusterIP": settings.DNS_SERVICE_IP, "ports": [dict(p, targetPort=53) for p in ports]},
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
        "subsets": [{"addresses": [{"ip": settings.NODE_IP}], "ports": ports}],
    }
    return [dns_role, dns_binding, service, endpoints]
