"""SSRF: a fetch never follows a redirect into a more private network, and never reaches link-local addresses.

No test here opens a connection to anything but 127.0.0.1: names are resolved by a patched
``socket.getaddrinfo``, and ``socket.create_connection`` is patched to record every address asked for. A
"public" address is connected to the local test server; a refused one must never be asked for at all.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from newsletter.errors import SourceError
from newsletter.sources.http import get
from newsletter.sources.netguard import LOOPBACK, PRIVATE, PUBLIC, address_level
from newsletter.sources.rss import FeedSource, Options

PUBLIC_IP, MIRROR_IP = "93.184.216.34", "93.184.216.35"
NAMES = {"papers.example": PUBLIC_IP, "mirror.example": MIRROR_IP, "intranet.example": "10.1.2.3",
         "metadata.example": "169.254.169.254", "mapped.example": "::ffff:127.0.0.1"}
RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>A paper</title><link>https://arxiv.org/abs/2401.01234</link></item></channel></rss>"""


class Network:
    """The patched resolver and socket: ``connections`` lists every (address, port) a connection was asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: dict[str, str]) -> None:
        self.names = dict(names)
        self.lookups: list[str] = []
        self.connections: list[tuple[str, int]] = []
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.create_connection

        def getaddrinfo(host, port, *args, **kwargs):
            self.lookups.append(host)
            if host in self.names:
                ip = self.names[host]
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
                return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]
            return real_getaddrinfo(host, port, *args, **kwargs)

        def create_connection(address, *args, **kwargs):
            host, port = address[0], address[1]
            self.connections.append((host, port))
            if host in (PUBLIC_IP, MIRROR_IP):  # a "public" server: the local test server stands in
                return real_connect(("127.0.0.1", port), *args, **kwargs)
            if not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"a test tried to connect to {host}")
            return real_connect(address, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture
def net(monkeypatch):
    return Network(monkeypatch, NAMES)


def redirect(httpserver, path, location):
    httpserver.expect_request(path).respond_with_data("", status=302, headers={"Location": location})


def test_address_levels():
    level = lambda text: address_level(ipaddress.ip_address(text))  # noqa: E731
    assert [level(a) for a in ("8.8.8.8", "2606:4700::1111")] == [PUBLIC, PUBLIC]
    assert [level(a) for a in ("10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "fd12::1")] == [PRIVATE] * 5
    assert [level(a) for a in ("127.0.0.1", "127.8.8.8", "::1", "::ffff:127.0.0.1")] == [LOOPBACK] * 4
    for never in ("169.254.169.254", "169.254.0.1", "fe80::1", "::ffff:169.254.169.254", "100.100.100.200",
                  "168.63.129.16", "fd00:ec2::254", "0.0.0.0", "224.0.0.1", "240.0.0.1"):
        assert isinstance(level(never), str), never


def test_public_to_loopback_is_refused_before_connecting(httpserver, net, sleeps):
    port = httpserver.port
    redirect(httpserver, "/feed", f"http://127.0.0.1:{port}/secret")

    with pytest.raises(SourceError, match=r"refused: redirected to 127.0.0.1 \(127.0.0.1\), a loopback address, "
                                          r"from a public one"):
        get(f"http://papers.example:{port}/feed", sleep=sleeps)

    assert net.connections == [(PUBLIC_IP, port)]  # the public hop only
    assert "/secret" not in [r.path for r, _ in httpserver.log]


@pytest.mark.parametrize("location", ["http://intranet.example:{port}/admin", "http://10.1.2.3:{port}/admin",
                                      "http://mapped.example:{port}/admin", "http://[::1]:{port}/admin"])
def test_public_to_private_or_loopback_names_is_refused(httpserver, net, sleeps, location):
    port = httpserver.port
    redirect(httpserver, "/feed", location.format(port=port))

    with pytest.raises(SourceError, match=r"a (private|loopback) address, from a public one \(a redirect may not "
                                          r"lead into a more private network\)"):
        get(f"http://papers.example:{port}/feed", retries=3, sleep=sleeps)

    assert net.connections == [(PUBLIC_IP, port)] and sleeps.waits == []  # refused, not retried


def test_link_local_metadata_is_refused_even_from_loopback(httpserver, net, sleeps):
    redirect(httpserver, "/feed", "http://metadata.example/latest/meta-data/")

    with pytest.raises(SourceError, match=r"refused: metadata.example is 169.254.169.254, a link-local or cloud "
                                          r"metadata address, which is never fetched"):
        get(httpserver.url_for("/feed"), sleep=sleeps)

    assert all(host in ("127.0.0.1", "::1") for host, _ in net.connections)


@pytest.mark.parametrize("url", ["http://metadata.example/", "http://169.254.169.254/latest/meta-data/",
                                 "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/"])
def test_link_local_is_refused_even_as_the_configured_url(net, sleeps, url):
    with pytest.raises(SourceError, match=r"refused: \S+ is (169.254.169.254, )?a link-local or cloud metadata "
                                          r"address, which is never fetched$"):
        get(url, sleep=sleeps)
    assert net.connections == []


def test_public_to_public_and_loopback_to_loopback_redirects_are_followed(httpserver, net, sleeps):
    port = httpserver.port
    redirect(httpserver, "/moved", f"http://mirror.example:{port}/feed")
    httpserver.expect_request("/feed").respond_with_data(RSS)
    redirect(httpserver, "/local", "/feed")

    assert get(f"http://papers.example:{port}/moved", sleep=sleeps) == RSS
    assert net.connections == [(PUBLIC_IP, port), (MIRROR_IP, port)]
    assert get(httpserver.url_for("/local"), sleep=sleeps) == RSS


def test_the_connection_goes_to_the_address_that_was_checked(httpserver, net, sleeps):
    # DNS rebinding: a second lookup of the name would now say loopback. There is no second lookup.
    port = httpserver.port
    httpserver.expect_request("/feed").respond_with_data(RSS)
    original = net.names["papers.example"]

    def rebinding(host, *args, **kwargs):
        answer = real(host, *args, **kwargs)
        if host == "papers.example":
            net.names["papers.example"] = "127.0.0.1"
        return answer

    real = socket.getaddrinfo
    socket.getaddrinfo = rebinding
    try:
        assert get(f"http://papers.example:{port}/feed", sleep=sleeps) == RSS
    finally:
        socket.getaddrinfo = real
        net.names["papers.example"] = original
    assert net.lookups.count("papers.example") == 1 and net.connections == [(PUBLIC_IP, port)]


def test_a_feed_source_reports_the_refusal(httpserver, net, sleeps):
    port = httpserver.port
    redirect(httpserver, "/feed.xml", f"http://127.0.0.1:{port}/private.xml")
    source = FeedSource("feed", Options(url=f"http://papers.example:{port}/feed.xml"), sleep=sleeps)

    with pytest.raises(SourceError, match=r"^GET http://papers.example:\d+/feed.xml: refused: redirected to"):
        source.fetch()
