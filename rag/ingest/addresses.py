"""Which addresses a fetch may reach: the guard against server-side request forgery.

A page or feed URL comes from a user, a third-party feed or a redirect, so without a policy the server would
fetch its own loopback services, the LAN or a cloud metadata endpoint for whoever asks, and index the answer
where /v1/search shows it. The rule (README "Fetching pages and feeds"):

- only public unicast addresses are reached by default; loopback, private (RFC 1918, unique local), link-local,
  shared (CGNAT, 100.64/10), multicast, reserved, unspecified and documentation ranges are refused, as are IPv6
  forms that carry such an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo);
- RAG_FETCH_ALLOW_PRIVATE=true opens loopback, private and CGNAT ranges (intranet feeds, the test news site);
  link-local (169.254.169.254 is the cloud metadata service), multicast and unspecified stay refused;
- RAG_FETCH_ALLOW_HOSTS lists host names and CIDR networks reachable whatever their address.

The name is resolved once per connection and the connection goes to the address checked
(rag/ingest/transport.py), so a name cannot resolve to a public address for the check and a private one for the
connect (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from rag.core.errors import AddressRefusedError, FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Ranges opened by RAG_FETCH_ALLOW_PRIVATE: where an intranet server lives. Link-local is not among them.
_PRIVATE_KINDS = frozenset({"loopback", "private", "shared (CGNAT)"})


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and would route to, if it is one of the forms that do."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # ::a.b.c.d (deprecated); :: and ::1 are judged as IPv6
        return ipaddress.IPv4Address(int(ip))
    return None


def _kind(ip: IPAddress) -> str | None:
    """What makes one address unreachable by default, or None for a public unicast address."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT)"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not public"
    return None


def address_kind(ip: IPAddress) -> str | None:
    """The reason `ip` is not a public address, looking through IPv6 forms that embed an IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and not ip.is_loopback and not ip.is_unspecified:
        inner = embedded_ipv4(ip)
        if inner is not None:
            # Judged by the IPv4 address it reaches: the IPv6 range itself (::ffff:0:0/96 is "reserved") says nothing.
            return _kind(inner)
    return _kind(ip)


@dataclass(frozen=True)
class AddressPolicy:
    allow_private: bool = False
    hosts: frozenset[str] = frozenset()  # lower-case host names reachable whatever their address
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, allow_private: bool, allow: Iterable[str]) -> AddressPolicy:
        hosts, networks = set(), []
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(allow_private=allow_private, hosts=frozenset(hosts), networks=tuple(networks))

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why `host` at `ip` may not be fetched, or None when it may."""
        if host.lower().rstrip(".") in self.hosts or any(ip in net for net in self.networks):
            return None
        kind = address_kind(ip)
        if kind is None or (self.allow_private and kind in _PRIVATE_KINDS):
            return None
        opened_by = (
            "RAG_FETCH_ALLOW_PRIVATE or RAG_FETCH_ALLOW_HOSTS" if kind in _PRIVATE_KINDS else "RAG_FETCH_ALLOW_HOSTS"
        )
        return f"{host} is a {kind} address ({ip}): not fetched (allow it with {opened_by})"


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order; an IP literal is itself."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from None
    # An IPv6 scope (fe80::1%eth0) is dropped: the address alone decides, and link-local is refused anyway.
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return list(dict.fromkeys(found))


def checked_addresses(policy: AddressPolicy, host: str, port: int) -> list[IPAddress]:
    """The addresses to connect to for `host`: all of them allowed, or AddressRefusedError. One refused address
    refuses the name: a name answering both public and private addresses is the shape of a rebinding attack."""
    addresses = resolve(host, port)
    for ip in addresses:
        why = policy.refusal(host, ip)
        if why:
            raise AddressRefusedError(why)
    return addresses
