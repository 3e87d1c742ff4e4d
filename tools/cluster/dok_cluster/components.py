"""The processes of the local cluster, in start order, as pure (name, argv, env) descriptions."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from dok_cluster import settings
from dok_cluster.paths import Paths

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    # The in-tree AWS credential provider otherwise asks 169.254.169.254 at start-up: traffic off this
    # machine, which must never happen.
    "AWS_EC2_METADATA_DISABLED": "true",
}


# Start order; `down` stops them in reverse.
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
         "dnsmasq", "dns-watcher")


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def _python() -> str:
    """The DNS watcher is stdlib-only and outlives this process: prefer the system python3."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def components(paths: Paths, bin_dir: Path, dns_watcher: Path) -> tuple[Component, ...]:
    pki, cfg, data = paths.pki, paths.config, paths.data
    k = str(bin_dir)
    etcd_data = data / "etcd"
    return (
        Component("etcd", (
            "etcd", "--name=dok", f"--data-dir={etcd_data}",
            f"--listen-client-urls={settings.ETCD_CLIENT_URL}", f"--advertise-client-urls={settings.ETCD_CLIENT_URL}",
            f"--listen-peer-urls={settings.ETCD_PEER_URL}", f"--initial-advertise-peer-urls={settings.ETCD_PEER_URL}",
            f"--initial-cluster=dok={settings.ETCD_PEER_URL}", "--listen-metrics-urls=",
            "--log-level=warn", "--logger=zap",
        )),
        Component("kube-apiserver", (
            f"{k}/kube-apiserver",
            f"--advertise-address={settings.NODE_IP}", f"--bind-address={settings.NODE_IP}",
            f"--secure-port={settings.API_PORT}", f"--etcd-servers={settings.ETCD_CLIENT_URL}",
            f"--service-cluster-ip-range={settings.SERVICE_CIDR}",
            f"--client-ca-file={pki}/ca.crt",
            f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key",
            f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
            f"--kubelet-certificate-authority={pki}/ca.crt",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki}/sa.pub",
            f"--service-account-signing-key-file={pki}/sa.key",
            f"--service-account-issuer={settings.SERVICE_ACCOUNT_ISSUER}",
            f"--api-audiences={settings.SERVICE_ACCOUNT_ISSUER}",
            "--anonymous-auth=false", "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true",
            "--profiling=false", "--event-ttl=1h", "--v=1",
            # Jobs' ttlSecondsAfterFinished is alpha in 1.20: without the gate finished Jobs are never reaped.
            "--feature-gates=TTLAfterFinished=true",
        )),
        Component("kube-controller-manager", (
            f"{k}/kube-controller-manager",
            f"--kubeconfig={cfg}/controller-manager.kubeconfig",
            "--use-service-account-credentials", f"--service-account-private-key-file={pki}/sa.key",
            f"--root-ca-file={pki}/ca.crt",
            f"--cluster-signing-cert-file={pki}/ca.crt", f"--cluster-signing-key-file={pki}/ca.key",
            "--allocate-node-cidrs", f"--cluster-cidr={settings.CLUSTER_CIDR}", "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={settings.SERVICE_CIDR}",
            f"--flex-volume-plugin-dir={data}/volume-plugins",
            "--leader-elect=false", "--port=0", "--secure-port=0", "--profiling=false", "--v=1",
            "--feature-gates=TTLAfterFinished=true",
        )),
        Component("kube-scheduler", (
            f"{k}/kube-scheduler",
            f"--kubeconfig={cfg}/scheduler.kubeconfig",
            "--leader-elect=false", "--port=0", "--secure-port=0", "--profiling=false", "--v=1",
        )),
        Component("kubelet", (
            f"{k}/kubelet",
            f"--config={cfg}/kubelet.json", f"--kubeconfig={cfg}/kubelet.kubeconfig",
            "--container-runtime=docker", "--docker-endpoint=unix:///var/run/docker.sock",
            f"--pod-infra-container-image={settings.PAUSE_IMAGE}",
            "--network-plugin=cni", "--cni-bin-dir=/usr/lib/cni",
            f"--cni-conf-dir={cfg}/cni", f"--cni-cache-dir={data}/cni-cache",
            f"--hostname-override={settings.NODE_NAME}", f"--node-ip={settings.NODE_IP}",
            f"--root-dir={data}/kubelet", f"--experimental-dockershim-root-directory={data}/dockershim",
            f"--volume-plugin-dir={data}/volume-plugins", f"--cert-dir={data}/kubelet-pki",
            "--v=1",
        ), env={"AWS_EC2_METADATA_DISABLED": "true"}),
        Component("kube-proxy", (
            f"{k}/kube-proxy", f"--config={cfg}/kube-proxy.json", "--v=1",
        )),
        Component("dnsmasq", (
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--no-poll", "--user=root", f"--listen-address={settings.NODE_IP}", "--bind-interfaces",
            f"--local=/{settings.CLUSTER_DOMAIN}/", "--local=/in-addr.arpa/", "--bogus-priv",
            f"--hostsdir={data}/dns-hosts", "--log-facility=-", "--cache-size=0",
        )),
        Component("dns-watcher", (
            _python(), str(dns_watcher), f"--server={settings.API_URL}", f"--ca={pki}/ca.crt",
            f"--cert={pki}/cluster-dns.crt", f"--key={pki}/cluster-dns.key",
            f"--hosts-dir={data}/dns-hosts", f"--domain={settings.CLUSTER_DOMAIN}",
        )),
    )
