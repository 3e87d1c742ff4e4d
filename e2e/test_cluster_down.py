"""e2e: while the local cluster is down nothing meant for it leaves this machine, and `dok` says it is down.

After `cluster down` the admin kubeconfig remains and still names the node address, which is then no longer
on `lo`. The cluster tool keeps `unreachable` routes for the node IP, the Service CIDR and the pod CIDR
across `down` (docs/cluster.md, *Route guards*), so:
- `ip route get <node IP>` / a ClusterIP / a pod address answer "unreachable", never the default gateway or
  its interface, and a TCP connect to the API server fails at once with EHOSTUNREACH;
- `dok list` with the local kubeconfig (through KUBECONFIG, and chosen as the local cluster's) exits 3 in well
  under 10 s with "the local cluster is down" and the `up` hint, without trying to connect;
- `cluster up` brings it back with the guards still in place and `dok list` works again (exit 0).
The checks that could send a packet (connect, `dok list`) run only after the route lookup proved it cannot
leave. This test takes the cluster down: other sessions' e2e tests sharing it fail meanwhile. While it checks
the down cluster it holds the cluster tool's `up`/`down` lock, so another session's `up` waits instead of
bringing the cluster back under it (seen on the shared machine). It always brings the cluster back up, even
when an assertion fails — but a cluster brought up from inside a Bazel test does not outlive the test: Bazel
stops every process a test started when it ends, those in sessions of their own too (measured: after this
target, `cluster status` says every component is "not running"). Every later e2e target of the same `bazel
test` then finds the cluster down and brings it up for itself (conftest's `cluster` fixture, ~20 s each,
the operator reinstalled by the operator tests). A cluster started outside Bazel's tests (`tools/bazel run
//tools:cluster -- up`, as .ci/run does) stays up across targets until this one runs.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import pytest

from e2e import helpers
from e2e.reliability_flows import dok, dok_env


@dataclass(frozen=True)
class Addresses:
    """The cluster's addresses, read from the running cluster and its kubeconfig (nothing hard-coded)."""

    node_ip: str
    api_port: int
    service_ip: str
    pod_ip: str  # an address in the node's pod CIDR


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": helpers.SBIN_PATH})


def _default_route() -> tuple[str | None, str | None]:
    """(gateway, device) of `ip -4 route show default`, e.g. ("192.0.2.1", "eth0")."""
    parts = _ip("-4", "route", "show", "default").stdout.split()
    gateway = parts[parts.index("via") + 1] if "via" in parts else None
    device = parts[parts.index("dev") + 1] if "dev" in parts else None
    return gateway, device


def _route_get(address: str) -> str:
    proc = _ip("-4", "route", "get", address)
    return f"rc={proc.returncode} {proc.stdout.strip()} {proc.stderr.strip()}"


def _assert_stays_here(address: str) -> str:
    gateway, device = _default_route()
    route = _route_get(address)
    assert "unreachable" in route.lower() or "no route to host" in route.lower(), route
    assert gateway is None or gateway not in route.split(), route
    assert device is None or f"dev {device}" not in route, route
    return route


@pytest.fixture
def addresses(cluster: helpers.Cluster) -> Addresses:
    doc = json.loads(cluster.kubeconfig.read_text())
    server = urlsplit(doc["clusters"][0]["cluster"]["server"])
    service_ip = cluster.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    pod_cidr = cluster.core.list_node().items[0].spec.pod_cidr
    pod_ip = str(ipaddress.ip_network(pod_cidr).network_address + 7)
    return Addresses(node_ip=str(server.hostname), api_port=int(server.port or 443), service_ip=service_ip,
                     pod_ip=pod_ip)


class HeldDown:
    """The cluster brought down, with the cluster tool's lock held so no other session's `up` can start it."""

    def __init__(self, lock_path: Path, node_ip: str) -> None:
        self.lock_path = lock_path
        self.node_ip = node_ip
        self.fh: IO[str] | None = None

    def bring_down(self, attempts: int = 3) -> None:
        for _ in range(attempts):
            assert helpers.run_cluster_tool("down", timeout=300).returncode == 0
            fh = self.lock_path.open("a")
            fcntl.flock(fh, fcntl.LOCK_EX)  # waits while another session's `up` runs
            if f"inet {self.node_ip}/" not in _ip("-4", "addr", "show", "dev", "lo").stdout:
                self.fh = fh
                return
            fh.close()  # another session's `up` got in between our `down` and the lock: again
        pytest.fail(f"the cluster came back up {attempts} times right after `down` (other sessions' `up`)")

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


@pytest.fixture
def cluster_down(cluster: helpers.Cluster, addresses: Addresses) -> Iterator[HeldDown]:
    """Takes the cluster down for the test (after `addresses` read them) and always brings it back up."""
    # the cluster tool's up/down lock: tools/cluster/dok_cluster/paths.py (`Paths.lock`, next to the kubeconfig)
    held = HeldDown(cluster.kubeconfig.parent / ".lock", addresses.node_ip)
    try:
        held.bring_down()
        yield held
    finally:
        held.release()
        proc = helpers.run_cluster_tool("up", capture=True, timeout=900)
        assert proc.returncode == 0, "`cluster up` after the test failed: the cluster is left down"


def test_down_cluster_is_unreachable_and_dok_refuses_then_up_works(cluster, addresses, cluster_down, tmp_path):
    gateway, device = _default_route()
    print(f"default route: via {gateway} dev {device}")

    # 1. nothing for the cluster routes off this machine
    assert f"inet {addresses.node_ip}/" not in _ip("-4", "addr", "show", "dev", "lo").stdout
    for address in (addresses.node_ip, addresses.service_ip, addresses.pod_ip):
        print(f"after down: ip route get {address}: {_assert_stays_here(address)}")

    # 2. (only now that the route lookup proved it cannot leave) a connect fails at once, locally
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        socket.create_connection((addresses.node_ip, addresses.api_port), timeout=5).close()
    took = time.monotonic() - start
    assert info.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), info.value
    assert took < 1, f"connect took {took:.2f}s: it did not fail locally"

    # 3. dok refuses the local kubeconfig at once: through KUBECONFIG, and chosen as the local cluster's
    home = tmp_path / "home"
    home.mkdir()
    for env in (dok_env(cluster), dok_env(None, KUBECONFIG=None, HOME=str(home),
                                          DOK_CLUSTER_STATE=str(cluster.kubeconfig.parent))):
        start = time.monotonic()
        proc = dok(cluster, "list", env=env, timeout=60)
        took = time.monotonic() - start
        assert proc.returncode == 3, proc.stderr
        assert took < 10, f"dok list took {took:.1f}s"
        assert "local cluster is down" in proc.stderr
        assert "tools/bazel run //tools:cluster -- up" in proc.stderr

    # 4. up again: guards kept, the node address local again, dok works
    cluster_down.release()
    proc = helpers.run_cluster_tool("up", capture=True, timeout=900)
    assert proc.returncode == 0
    route = _route_get(addresses.node_ip)
    assert route.startswith("rc=0 local ") and " dev lo " in route, route
    guards = _ip("-4", "route", "show", "type", "unreachable").stdout.split()
    assert addresses.node_ip in guards or f"{addresses.node_ip}/32" in guards, guards
    helpers.wait_for("the API server after up", lambda: helpers.cluster_is_up(), timeout=120)
    proc = dok(cluster, "list", timeout=120)
    assert proc.returncode == 0, proc.stderr
