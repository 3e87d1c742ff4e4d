"""Unit tests of the route guards' pure parts: which destinations, the `ip` argv, parsing `ip route show`."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from dok_cluster import host, settings
from dok_cluster.errors import ClusterError

# `ip -4 route show type unreachable` as printed on this machine (a /32 has no prefix length).
ALL_PRESENT = "unreachable 10.200.0.1 \nunreachable 10.96.0.0/12 \nunreachable 10.244.0.0/16 \n"


def test_guards_cover_the_node_ip_services_and_pods() -> None:
    nets = [ipaddress.IPv4Network(d) for d in settings.ROUTE_GUARDS]
    assert ipaddress.IPv4Address(settings.NODE_IP) in nets[0] and nets[0].prefixlen == 32
    for address in (settings.API_SERVICE_IP, settings.DNS_SERVICE_IP, "10.244.0.7"):
        assert any(ipaddress.IPv4Address(address) in n for n in nets), address
    # the API URL every kubeconfig carries goes to a guarded address
    assert settings.API_URL.split("//")[1].split(":")[0] == settings.NODE_IP


def test_pod_bridge_route_stays_more_specific_than_the_pod_guard() -> None:
    guard = next(ipaddress.IPv4Network(d) for d in settings.ROUTE_GUARDS
                 if ipaddress.IPv4Network(settings.POD_CIDR).subnet_of(ipaddress.IPv4Network(d)))
    assert ipaddress.IPv4Network(settings.POD_CIDR).prefixlen > guard.prefixlen


def test_argv() -> None:
    assert host.route_guard_argv("add", "10.200.0.1/32") == ["ip", "route", "add", "unreachable", "10.200.0.1/32"]
    assert host.route_guard_argv("del", "10.96.0.0/12") == ["ip", "route", "del", "unreachable", "10.96.0.0/12"]
    with pytest.raises(ValueError):
        host.route_guard_argv("replace", "10.96.0.0/12")


def test_missing_when_none_present() -> None:
    assert host.missing_route_guards("") == list(settings.ROUTE_GUARDS)


def test_nothing_missing_when_all_present_including_a_bare_slash_32() -> None:
    assert host.missing_route_guards(ALL_PRESENT) == []


def test_only_the_missing_one_and_other_routes_ignored() -> None:
    out = "unreachable 10.96.0.0/12 \nunreachable 10.244.0.0/16 \nunreachable 192.168.7.0/24 \ngarbage\n"
    assert host.missing_route_guards(out) == [f"{settings.NODE_IP}/32"]


def test_a_wider_unrelated_route_does_not_count() -> None:
    out = "unreachable 10.0.0.0/8 \n"
    assert host.missing_route_guards(out) == list(settings.ROUTE_GUARDS)


class FakeIp:
    """Stands in for host.run: keeps a set of unreachable routes, answers `show`, records add/del."""

    def __init__(self, present: str = "", *, refuse_adds: bool = False) -> None:
        self.routes = [line.split()[1] for line in present.splitlines() if line.startswith("unreachable")]
        self.refuse_adds = refuse_adds
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        if argv[:3] == ["ip", "-4", "route"]:
            out = "".join(f"unreachable {r} \n" for r in self.routes)
            return subprocess.CompletedProcess(argv, 0, out, "")
        action, dest = argv[2], argv[4]
        if action == "add" and not self.refuse_adds:
            self.routes.append(dest.removesuffix("/32"))
        elif action == "del":
            self.routes.remove(dest.removesuffix("/32"))
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_ensure_adds_only_what_is_missing_and_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIp("unreachable 10.96.0.0/12 \n")
    monkeypatch.setattr(host, "run", fake)
    assert host.ensure_route_guards() == [f"{settings.NODE_IP}/32", settings.CLUSTER_CIDR]
    adds = [c for c in fake.calls if c[2] == "add"]
    assert adds == [host.route_guard_argv("add", f"{settings.NODE_IP}/32"),
                    host.route_guard_argv("add", settings.CLUSTER_CIDR)]
    assert host.ensure_route_guards() == []  # second time: nothing to do
    assert len([c for c in fake.calls if c[2] == "add"]) == 2


def test_ensure_fails_loudly_when_a_guard_cannot_be_added(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "run", FakeIp(refuse_adds=True))
    with pytest.raises(ClusterError, match="route guards"):
        host.ensure_route_guards()


def test_remove_takes_away_only_our_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeIp(ALL_PRESENT + "unreachable 192.168.7.0/24 \n")
    monkeypatch.setattr(host, "run", fake)
    assert host.remove_route_guards() == list(settings.ROUTE_GUARDS)
    assert fake.routes == ["192.168.7.0/24"]
