"""The fetch address policy (rag/ingest/addresses.py) and the pinned transport (rag/ingest/transport.py): which
addresses are refused, and that the connection goes to the address that was checked."""

from __future__ import annotations

import ipaddress
import socket

import httpcore
import pytest

from rag.core.errors import AddressRefusedError
from rag.ingest.addresses import AddressPolicy, address_kind, checked_addresses
from rag.ingest.transport import PinnedBackend

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd00::1": "private",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "shared (CGNAT)",
    "100.127.255.254": "shared (CGNAT)",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "192.0.2.1": "private",  # documentation (TEST-NET-1)
    # IPv6 forms carrying a refused IPv4 address
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "link-local",
    "::127.0.0.1": "loopback",
    "::10.0.0.1": "private",
    "2002:7f00:1::": "loopback",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::": "link-local",  # 6to4 of 169.254.169.254
    "64:ff9b::7f00:1": "loopback",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
}


@pytest.mark.parametrize("address, kind", REFUSED.items())
def test_non_public_addresses_and_their_ipv6_forms_are_refused(address, kind):
    ip = ipaddress.ip_address(address)
    assert address_kind(ip) == kind
    assert AddressPolicy().refusal("h", ip) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_are_allowed(address):
    assert AddressPolicy().refusal("example.com", ipaddress.ip_address(address)) is None


def test_allow_private_opens_intranet_ranges_but_not_link_local_or_multicast():
    policy = AddressPolicy.build(True, [])
    for open_ in ("127.0.0.1", "10.0.0.5", "100.64.1.1", "fd00::5", "::ffff:192.168.0.1"):
        assert policy.refusal("intranet", ipaddress.ip_address(open_)) is None, open_
    for closed in ("169.254.169.254", "224.0.0.1", "0.0.0.0"):
        assert "RAG_FETCH_ALLOW_HOSTS" in policy.refusal("h", ipaddress.ip_address(closed)), closed


def test_allow_hosts_names_hosts_and_networks():
    policy = AddressPolicy.build(False, ["Feeds.Intranet.example", "10.1.0.0/16"])
    assert policy.refusal("feeds.intranet.example", ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal("other", ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal("other", ipaddress.ip_address("10.2.0.1")) is not None


def _resolver(monkeypatch, answers: list[list[str]]) -> list[str]:
    """getaddrinfo answering each call with the next list of addresses; returns the names it was asked."""
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        ips = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_name_with_any_refused_address_is_refused(monkeypatch):
    _resolver(monkeypatch, [["93.184.216.34", "127.0.0.1"]])
    with pytest.raises(AddressRefusedError, match="loopback"):
        checked_addresses(AddressPolicy(), "rebind.example", 80)


class _Recorder(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.connected: list[str] = []

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connected.append(host)
        return httpcore.MockStream([])


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(monkeypatch):
    # A rebinding resolver: public for the first lookup, loopback for any later one.
    asked = _resolver(monkeypatch, [["93.184.216.34"], ["127.0.0.1"]])
    inner = _Recorder()
    PinnedBackend(AddressPolicy(), inner).connect_tcp("rebind.example", 80)
    assert asked == ["rebind.example"] and inner.connected == ["93.184.216.34"]


def test_a_refused_name_is_never_connected_to(monkeypatch):
    _resolver(monkeypatch, [["10.0.0.7"]])
    inner = _Recorder()
    with pytest.raises(AddressRefusedError, match="private"):
        PinnedBackend(AddressPolicy(), inner).connect_tcp("intranet.example", 443)
    assert inner.connected == []
