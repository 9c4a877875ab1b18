"""Where a fetch may connect: no redirect into a more private network (SSRF), never link-local or metadata.

Every address is put in one of three levels, public < private < loopback. The configured URL's host sets
the ceiling; each hop of a redirect chain is resolved and checked before anything connects to it, and an
address more private than the ceiling is refused. So a public feed cannot bounce a fetch to
``http://127.0.0.1:5432/`` or ``http://10.0.0.1/admin``, while a feed an operator configured on the LAN
may still redirect within the LAN. Link-local addresses (``169.254.0.0/16``, ``fe80::/10``, where cloud
metadata services answer), the known metadata addresses, and multicast, unspecified or reserved addresses
are refused always, even as the configured URL.

The check happens after DNS resolution, and the connection is then made to the very address that was
checked (``PinnedBackend``), so a name that resolves differently the second time (DNS rebinding) gains
nothing. See OWASP's SSRF prevention cheat sheet and CWE-918.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from typing import Any, Iterable

import httpcore
import httpx

from ..errors import SourceError

PUBLIC, PRIVATE, LOOPBACK = 0, 1, 2
LEVEL_NAMES = {PUBLIC: "public", PRIVATE: "private", LOOPBACK: "loopback"}

# Cloud metadata services outside the link-local range: Alibaba, Azure's wire server, AWS over IPv6.
METADATA = tuple(ipaddress.ip_network(n) for n in ("100.100.100.200/32", "168.63.129.16/32", "fd00:ec2::254/128"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(SourceError):
    """A connection the SSRF rules forbid; raised before any connection to that address is opened."""


def address_level(ip: IPAddress) -> int | str:
    """PUBLIC, PRIVATE or LOOPBACK; or, for an address never connected to, the reason as text."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_loopback:
        return LOOPBACK
    if ip.is_link_local or any(ip in net for net in METADATA):
        return "a link-local or cloud metadata address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:  # RFC 1918, unique local, carrier-grade NAT, documentation...
        return PRIVATE
    return PUBLIC


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to, in the resolver's order (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Guard:
    """The SSRF rules for one fetch: the ceiling set by the configured URL, and the addresses checked so far."""

    def __init__(self) -> None:
        self.ceiling: int | None = None
        self._checked: dict[tuple[str, int], list[str]] = {}

    def check(self, url: httpx.URL, first: bool) -> list[str]:
        """Resolve ``url``'s host and return the addresses it may connect to; ``DestinationRefused`` if none.

        The first URL (the configured one) sets the ceiling: its most public address's level.
        """
        host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
        addresses = resolve(host, port)
        levels = [(ip, address_level(ip)) for ip in addresses]
        usable = [(ip, level) for ip, level in levels if isinstance(level, int)]
        if not usable:
            ip, reason = levels[0]
            named = f"{host} is" if _is_literal(host) else f"{host} is {ip},"
            raise DestinationRefused(f"refused: {named} {reason}, which is never fetched")
        if first or self.ceiling is None:
            self.ceiling = min(level for _, level in usable)
        allowed = [str(ip) for ip, level in usable if level <= self.ceiling]
        if not allowed:
            ip, level = usable[0]
            raise DestinationRefused(
                f"refused: redirected to {host} ({ip}), a {LEVEL_NAMES[level]} address, from a "
                f"{LEVEL_NAMES[self.ceiling]} one (a redirect may not lead into a more private network)"
            )
        self._checked[(host, port)] = allowed
        return allowed

    def addresses_for(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host`` (checking it now if it was not), for the connection itself."""
        key = (host, port)
        if key not in self._checked:
            self.check(httpx.URL(scheme="http", host=host, port=port), first=False)
        return self._checked[key]


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked (no second lookup)."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        failure: Exception | None = None
        for address in self.guard.addresses_for(host, port):
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next checked address, as create_connection would
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise DestinationRefused("refused: unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_client(guard: Guard) -> httpx.Client:
    """An ``httpx.Client`` whose direct connections go through ``PinnedBackend``.

    httpx has no public hook for the network backend, so the transport's pool is replaced by an
    equivalent one (TLS verification as httpx's default) that uses it. Redirects are followed by the
    caller, hop by hop, so each hop is checked before it is requested.
    """
    transport = httpx.HTTPTransport(verify=_ssl_context())
    transport._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=PinnedBackend(guard))
    return httpx.Client(transport=transport, follow_redirects=False)


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, made once: loading the CA bundle costs tens of milliseconds."""
    return httpx.create_ssl_context()
