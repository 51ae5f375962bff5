"""The page reader: fetch a public web page behind the SSRF guard and extract its main text.

Every hop is vetted by `UrlGuard` before a connection is made, and the request goes to the
address the guard vetted (the original host travels in the Host header and TLS SNI, so
certificates are still checked against the name). Redirects are followed here, hop by hop, never
by httpx; the body is streamed and refused past `max_bytes`; the whole read has one deadline.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import httpx

from agents.errors import SearchError
from agents.tools.ingest import html_text, pdf_text
from agents.tools.ssrf import UrlGuard

DEFAULT_TIMEOUT_S = 15.0
DEFAULT_MAX_BYTES = 2_000_000
DEFAULT_MAX_REDIRECTS = 5
USER_AGENT = "Fawn/0.1 (self-hosted research assistant)"
TEXT_TYPES = ("text/plain", "text/markdown")
HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPES = ("application/pdf",)


@dataclass(frozen=True)
class Page:
    """A page as read: its final URL (after redirects), title and main text."""

    url: str
    title: str
    text: str


@dataclass(frozen=True)
class _Body:
    url: httpx.URL
    content_type: str
    encoding: str | None
    data: bytes


class PageReader:
    """Reads public http(s) pages; every failure or refusal is a SearchError.

    `ssl_context` decides which certificates are trusted (certifi's bundle by default).
    """

    def __init__(
        self,
        guard: UrlGuard | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.guard = guard or UrlGuard()
        # httpx's default: certifi's CA bundle, present even where the system has none.
        self.ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects

    async def read(self, url: str) -> Page:
        """The title and main text of the page at `url`."""
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._fetch(url)
        except TimeoutError as exc:
            raise SearchError(f"Reading {url} took longer than {self.timeout_s:g} s.") from exc
        except httpx.HTTPError as exc:
            raise SearchError(f"Cannot read {url}: {type(exc).__name__}: {exc}.") from exc
        return await asyncio.to_thread(_to_page, body)

    async def _fetch(self, url: str) -> _Body:
        current: str | httpx.URL = url
        async with httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # a proxy would resolve names itself, past the guard
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT},
            verify=self.ssl_context,
        ) as client:
            for _ in range(self.max_redirects + 1):
                target = await self.guard.vet(current)
                request = client.build_request(
                    "GET",
                    target.connect_url,
                    headers={"Host": target.host_header},
                    extensions={"sni_hostname": target.sni_hostname} if target.sni_hostname else {},
                )
                response = await client.send(request, stream=True)
                try:
                    if not response.is_redirect:
                        return await self._body(target.url, response)
                    current = _next_hop(target.url, response)
                finally:
                    await response.aclose()
        raise SearchError(f"Reading {url} was redirected more than {self.max_redirects} times.")

    async def _body(self, url: httpx.URL, response: httpx.Response) -> _Body:
        if response.status_code >= 400:
            raise SearchError(f"Cannot read {url}: the server answered {response.status_code}.")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise SearchError(f"Refused {url}: the page is larger than {self.max_bytes} bytes.")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise SearchError(f"Refused {url}: the page is larger than {self.max_bytes} bytes.")
            chunks.append(chunk)
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        return _Body(url, content_type, response.charset_encoding, b"".join(chunks))


def _next_hop(url: httpx.URL, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise SearchError(f"{url} answered {response.status_code} without a Location to follow.")
    try:
        return url.join(location)
    except httpx.InvalidURL as exc:
        raise SearchError(f"{url} redirected to an invalid URL {location!r}.") from exc


def _decode(data: bytes, encoding: str | None) -> str:
    try:
        return data.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


def _to_page(body: _Body) -> Page:
    url = str(body.url)
    if body.content_type in PDF_TYPES:
        title, text = pdf_text(body.data, source=url)
    elif body.content_type in TEXT_TYPES:
        title, text = None, _decode(body.data, body.encoding)
    elif body.content_type in HTML_TYPES or not body.content_type:
        title, text = html_text(body.data, url=url)
    else:
        raise SearchError(f"Cannot read {url}: its content type {body.content_type} is not text.")
    return Page(url=url, title=title or body.url.host or url, text=text.strip())
