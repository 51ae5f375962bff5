"""The page reader against real HTTP servers on 127.0.0.1, allowed only where a test says so."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any

import pytest
import trustme

from agents.errors import SearchError
from agents.tools.reader import PageReader
from agents.tools.ssrf import IPAddress, UrlGuard

ARTICLE = b"""<!doctype html><html><head><title>Arthur's Magazine</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article><h1>Arthur's Magazine</h1>
<p>Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia
in the 19th century. Edited by Timothy Shay Arthur, it featured work by Edgar A. Poe,
J.H. Ingraham, Sarah Josepha Hale, Thomas G. Spear, and others.</p>
<p>In May 1846 it was merged into Godey's Lady's Book. The magazine was well regarded by its
readers and by the writers who published in it during its short life.</p>
</article><footer>Copyright notice</footer></body></html>"""


@dataclass
class Route:
    """What the site answers on one path; no Content-Length when `declare_length` is off."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/html"})
    body: bytes = b""
    delay_s: float = 0.0
    declare_length: bool = True


@dataclass
class Site:
    """A real HTTP server on 127.0.0.1 that records every request it gets (path, Host)."""

    server: ThreadingHTTPServer
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reader(self, **options: Any) -> PageReader:
        """A reader allowed to reach this site's origin, and nothing else private."""
        return PageReader(UrlGuard.allowing([self.origin]), **options)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requests.append((self.path, self.headers.get("Host", "")))
            route = site.routes.get(self.path, Route(404, body=b"not found"))
            time.sleep(route.delay_s)
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.declare_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            # The reader may stop reading mid-body, as it should past its size cap.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def running_site(tls: ssl.SSLContext | None = None) -> Iterator[Site]:
    """A site on a free port of 127.0.0.1 (HTTPS with `tls`), stopped on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    site = Site(server)
    server.RequestHandlerClass = _handler(site)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site_factory() -> Iterator[Callable[[], Site]]:
    """Starts sites on free ports; stops them all after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(running_site())


@pytest.fixture
def site() -> Iterator[Site]:
    with running_site() as site:
        yield site


async def test_reader_extracts_title_and_main_text(site: Site) -> None:
    site.routes["/article"] = Route(body=ARTICLE)
    page = await site.reader().read(f"{site.origin}/article")
    assert page.title == "Arthur's Magazine"
    assert "literary periodical published in Philadelphia" in page.text
    assert "Godey's Lady's Book" in page.text
    assert page.url == f"{site.origin}/article"


async def test_reader_reads_plain_text_as_is(site: Site) -> None:
    site.routes["/notes.txt"] = Route(
        headers={"Content-Type": "text/plain; charset=utf-8"}, body="Zürich notes.".encode()
    )
    page = await site.reader().read(f"{site.origin}/notes.txt")
    assert page.text == "Zürich notes."


async def test_reader_refuses_loopback_by_default_without_connecting(site: Site) -> None:
    site.routes["/article"] = Route(body=ARTICLE)
    with pytest.raises(SearchError, match=r"non-public address 127\.0\.0\.1"):
        await PageReader().read(f"{site.origin}/article")
    assert site.requests == []


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "file:///etc/passwd"],
)
async def test_reader_refuses_a_redirect_to_a_private_address(site: Site, location: str) -> None:
    site.routes["/go"] = Route(302, headers={"Location": location})
    with pytest.raises(SearchError, match="Refused"):
        await site.reader(timeout_s=10).read(f"{site.origin}/go")
    assert [path for path, _ in site.requests] == ["/go"]


async def test_reader_refuses_a_redirect_to_another_local_server_before_connecting(
    site_factory: Callable[[], Site],
) -> None:
    allowed, other = site_factory(), site_factory()
    other.routes["/secret"] = Route(body=b"<p>internal</p>")
    allowed.routes["/go"] = Route(
        301, headers={"Location": f"http://localhost:{other.port}/secret"}
    )
    with pytest.raises(SearchError, match="Refused"):
        await allowed.reader().read(f"{allowed.origin}/go")
    assert other.requests == []


async def test_reader_follows_redirects_it_allows_and_reports_the_final_url(site: Site) -> None:
    site.routes["/old"] = Route(301, headers={"Location": "/moved"})
    site.routes["/moved"] = Route(307, headers={"Location": f"{site.origin}/article"})
    site.routes["/article"] = Route(body=ARTICLE)
    page = await site.reader().read(f"{site.origin}/old")
    assert page.url == f"{site.origin}/article"
    assert [path for path, _ in site.requests] == ["/old", "/moved", "/article"]


async def test_reader_stops_after_too_many_redirects(site: Site) -> None:
    site.routes["/loop"] = Route(302, headers={"Location": "/loop"})
    with pytest.raises(SearchError, match="redirected more than 3 times"):
        await site.reader(max_redirects=3).read(f"{site.origin}/loop")
    assert len(site.requests) == 4


async def test_reader_refuses_a_page_declared_larger_than_the_cap(site: Site) -> None:
    site.routes["/big"] = Route(body=b"<p>" + b"x" * 300_000 + b"</p>")
    with pytest.raises(SearchError, match="larger than 100000 bytes"):
        await site.reader(max_bytes=100_000).read(f"{site.origin}/big")


async def test_reader_stops_streaming_a_page_past_the_cap(site: Site) -> None:
    site.routes["/stream"] = Route(body=b"<p>" + b"y" * 3_000_000 + b"</p>", declare_length=False)
    with pytest.raises(SearchError, match="larger than 2000000 bytes"):
        await site.reader().read(f"{site.origin}/stream")


@pytest.mark.timeout(20)
async def test_reader_gives_up_on_a_slow_server(site: Site) -> None:
    site.routes["/slow"] = Route(body=ARTICLE, delay_s=5)
    with pytest.raises(SearchError, match=r"longer than 0\.5 s"):
        await site.reader(timeout_s=0.5).read(f"{site.origin}/slow")


async def resolve_docs_example(host: str, port: int) -> list[IPAddress]:
    """`docs.example` is 127.0.0.1; the system resolver knows no such name."""
    return [ip_address("127.0.0.1")] if host == "docs.example" else []


async def test_reader_connects_to_the_vetted_address_not_a_fresh_lookup(site: Site) -> None:
    # The page can only come through the address the guard vetted, the name in the Host header.
    site.routes["/article"] = Route(body=ARTICLE)
    origin = f"http://docs.example:{site.port}"
    reader = PageReader(UrlGuard.allowing([origin], resolver=resolve_docs_example))
    page = await reader.read(f"{origin}/article")
    assert "Philadelphia" in page.text
    assert site.requests == [("/article", f"docs.example:{site.port}")]


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (Route(404, body=b"gone"), "answered 404"),
        (Route(headers={"Content-Type": "image/png"}, body=b"\x89PNG"), "not text"),
        (Route(302, headers={}), "without a Location"),
    ],
)
async def test_reader_turns_bad_answers_into_search_errors(
    site: Site, route: Route, message: str
) -> None:
    site.routes["/page"] = route
    with pytest.raises(SearchError, match=message):
        await site.reader().read(f"{site.origin}/page")


async def test_reader_reports_a_closed_port_as_a_search_error(
    site_factory: Callable[[], Site],
) -> None:
    closed = site_factory()
    origin = closed.origin
    closed.server.shutdown()
    closed.server.server_close()
    with pytest.raises(SearchError, match="ConnectError"):
        await PageReader(UrlGuard.allowing([origin])).read(f"{origin}/")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


def https_reader(ca: trustme.CA, port: int) -> PageReader:
    """A reader that trusts `ca` and may reach https://docs.example:<port> (on 127.0.0.1)."""
    client = ssl.create_default_context()
    ca.configure_trust(client)
    guard = UrlGuard.allowing([f"https://docs.example:{port}"], resolver=resolve_docs_example)
    return PageReader(guard, ssl_context=client)


def server_tls(ca: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return context


async def test_https_is_read_through_the_vetted_address_with_the_name_in_sni(
    ca: trustme.CA,
) -> None:
    with running_site(tls=server_tls(ca, "docs.example")) as site:
        site.routes["/article"] = Route(body=ARTICLE)
        page = await https_reader(ca, site.port).read(f"https://docs.example:{site.port}/article")
    assert "Philadelphia" in page.text
    assert site.requests == [("/article", f"docs.example:{site.port}")]


async def test_https_certificate_for_another_name_is_refused(ca: trustme.CA) -> None:
    with running_site(tls=server_tls(ca, "other.example")) as site:
        site.routes["/article"] = Route(body=ARTICLE)
        with pytest.raises(SearchError, match="certificate"):
            await https_reader(ca, site.port).read(f"https://docs.example:{site.port}/article")
    assert site.requests == []
