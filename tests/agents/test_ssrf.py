"""The SSRF guard refuses every non-public destination before a connection is made."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from agents.errors import SearchError
from agents.tools.ssrf import IPAddress, UrlGuard, is_public_address, origin_of


def resolver_for(table: dict[str, list[str]]):
    """A resolver answering from `table`; it records the names it was asked for."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ip_address(a) for a in table.get(host, [])]

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3:8080/admin",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",  # CGNAT
        "http://224.0.0.1/",  # multicast
        "http://240.0.0.1/",  # reserved
        "http://0.0.0.0/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fd00:ec2::254]/",
        "http://[fc00::1]/",
        "http://[fe80::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://[::ffff:10.0.0.1]/",
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    ],
)
async def test_guard_refuses_non_public_address_literals(url: str) -> None:
    with pytest.raises(SearchError, match="Refused"):
        await UrlGuard().vet(url)


@pytest.mark.parametrize(
    "url", ["http://localhost/", "http://localhost:8080/x", "http://2130706433/"]
)
async def test_guard_refuses_names_the_system_resolves_to_loopback(url: str) -> None:
    with pytest.raises(SearchError, match="non-public address"):
        await UrlGuard().vet(url)


@pytest.mark.parametrize(
    "url", ["http://metadata.google.internal/computeMetadata/v1/", "http://metadata/"]
)
async def test_guard_refuses_metadata_hosts_without_resolving_them(url: str) -> None:
    resolver = resolver_for({"metadata.google.internal": ["8.8.8.8"], "metadata": ["8.8.8.8"]})
    with pytest.raises(SearchError, match="metadata"):
        await UrlGuard(resolver=resolver).vet(url)
    assert resolver.asked == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/file",
        "gopher://example.org/",
        "javascript:alert(1)",
        "data:text/html,hello",
        "//example.org/no-scheme",
    ],
)
async def test_guard_refuses_non_http_schemes(url: str) -> None:
    with pytest.raises(SearchError, match="only http and https"):
        await UrlGuard().vet(url)


async def test_guard_refuses_a_name_with_any_private_address() -> None:
    resolver = resolver_for({"mixed.example": ["93.184.215.14", "10.1.2.3"]})
    with pytest.raises(SearchError, match=r"10\.1\.2\.3"):
        await UrlGuard(resolver=resolver).vet("https://mixed.example/")


async def test_guard_refuses_a_name_that_does_not_resolve() -> None:
    with pytest.raises(SearchError, match="Cannot resolve"):
        await UrlGuard(resolver=resolver_for({})).vet("https://nowhere.example/")


async def test_guard_pins_the_vetted_address_and_keeps_the_name_for_host_and_tls() -> None:
    resolver = resolver_for({"docs.example": ["93.184.215.14"]})
    target = await UrlGuard(resolver=resolver).vet("https://Docs.Example:8443/a/b?c=d")
    assert target.address == ip_address("93.184.215.14")
    assert str(target.connect_url) == "https://93.184.215.14:8443/a/b?c=d"
    assert target.host_header == "docs.example:8443"
    assert target.sni_hostname == "docs.example"


async def test_guard_accepts_a_public_literal_without_sni() -> None:
    target = await UrlGuard().vet("http://93.184.215.14/page")
    assert str(target.connect_url) == "http://93.184.215.14/page"
    assert target.sni_hostname is None


async def test_allowed_origin_lets_through_that_origin_only() -> None:
    guard = UrlGuard.allowing(["http://127.0.0.1:8123"])
    target = await guard.vet("http://127.0.0.1:8123/page")
    assert target.address == ip_address("127.0.0.1")
    for other in ("http://127.0.0.1:8124/", "https://127.0.0.1:8123/", "http://[::1]:8123/"):
        with pytest.raises(SearchError, match="Refused"):
            await guard.vet(other)


def test_origin_fills_in_default_ports() -> None:
    assert origin_of("https://Example.org/x") == "https://example.org:443"
    assert origin_of("http://example.org:8080") == "http://example.org:8080"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("168.63.129.16", False),  # Azure's platform endpoint, a global address
        ("100.100.100.200", False),
        ("192.0.2.1", False),  # documentation range
        ("::ffff:192.168.0.1", False),
    ],
)
def test_public_address_classification(address: str, public: bool) -> None:
    assert is_public_address(ip_address(address)) is public
