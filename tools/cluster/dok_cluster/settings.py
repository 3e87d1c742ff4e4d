"""Fixed addresses, ports and names of the local single-node cluster (one place, used everywhere)."""

from __future__ import annotations

NODE_NAME = "dok-node"
NODE_IP = "10.200.0.1"  # put on `lo` as /32: no dummy interfaces on these kernels
SERVICE_CIDR = "10.96.0.0/12"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_CIDR = "10.244.0.0/16"
POD_CIDR = "10.244.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
API_PORT = 6443
API_URL = f"https://{NODE_IP}:{API_PORT}"
ETCD_CLIENT_URL = "http://127.0.0.1:12379"  # not etcd's default ports: never collide with another etcd
ETCD_PEER_URL = "http://127.0.0.1:12380"
KUBELET_PORT = 10250
BRIDGE = "dokbr0"
CNI_NETWORK = "dok"
PAUSE_IMAGE = "dok-cluster/pause:v3.4.1-dok"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# dockershim marks every container the kubelet creates with this label; `down` removes exactly those.
KUBELET_CONTAINER_LABEL = "io.kubernetes.docker.type"

# Route guards: `unreachable` routes in the main table for every address of the cluster that a client on this
# machine may still hold once the cluster is down (the kubeconfigs point at the node IP; Service and pod IPs).
# Without them those addresses follow the default route OFF this machine. While the cluster is up the local
# table (the node IP on `lo`) and the pod bridge's /24 are more specific or looked up first, so they do not
# get in the way. Installed before the node address is first used, kept across `down` (the kubeconfigs stay),
# removed only by `purge` (which deletes the state dir).
ROUTE_GUARDS = (f"{NODE_IP}/32", SERVICE_CIDR, CLUSTER_CIDR)

# Sysctls the kubelet / kube-proxy / this tool may change; saved by `up`, restored by `down`.
SAVED_SYSCTLS = (
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
)
