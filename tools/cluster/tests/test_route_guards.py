"""Unit tests of the route guards' pure parts: which destinations, the `ip` argv, parsing `ip route show`."""

from __future__ import annotations

import ipaddress

import pytest

from dok_cluster import host, settings

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
