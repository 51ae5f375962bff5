"""API keys: optional on loopback, required when the API is bound to any other address.

With a key set, a request passes with `Authorization: Bearer <key>` or with the session cookie
the login page sets. The cookie holds an expiry and an HMAC of it keyed by the API key, never the
key itself, so changing the key logs every browser out. Requests the cookie authenticates are
ambient (the browser adds it), so a state-changing one must also come from the app's own pages:
the cookie is SameSite=Strict and the Origin (or Referer) must be this host. Unauthenticated
page loads go to the login page; API calls get 401 JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request, Response, status
from pydantic import SecretStr

from app.settings import Settings
from serving.errors import ConfigError
from serving.settings import LOOPBACK_HOSTS

SESSION_COOKIE = "fawn_session"
SESSION_TTL_S = 7 * 24 * 3600
LOGIN_PATH = "/login"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PUBLIC_ATTRIBUTE = "fawn_public"
Endpoint = TypeVar("Endpoint", bound=Callable[..., object])


def check_bind_is_safe(settings: Settings) -> None:
    """Refuse to serve off loopback without an API key."""
    if settings.host not in LOOPBACK_HOSTS and settings.api_key is None:
        raise ConfigError(
            f"Binding the API to {settings.host} needs an API key: set FAWN_API_KEY "
            "(clients send `Authorization: Bearer <key>`), or bind to 127.0.0.1."
        )


def public(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint as reachable without the key (the login page)."""
    setattr(endpoint, _PUBLIC_ATTRIBUTE, True)
    return endpoint


def _signature(key: SecretStr, expires: int) -> str:
    message = f"fawn-session:{expires}".encode()
    return hmac.new(key.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def session_token(key: SecretStr, now: float | None = None) -> str:
    """A session cookie value: its expiry and the key's HMAC of it."""
    expires = int((time.time() if now is None else now) + SESSION_TTL_S)
    return f"{expires}.{_signature(key, expires)}"


def session_is_valid(token: str, key: SecretStr, now: float | None = None) -> bool:
    """Whether `token` was made with `key` and has not expired (constant-time comparison)."""
    expires, _, signature = token.partition(".")
    if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature.encode(), _signature(key, int(expires)).encode())


def key_matches(candidate: str, key: SecretStr) -> bool:
    """Whether `candidate` is the API key (constant-time comparison)."""
    return secrets.compare_digest(candidate.encode(), key.get_secret_value().encode())


def set_session_cookie(response: Response, request: Request, key: SecretStr) -> None:
    """Log the browser in: HttpOnly, SameSite=Strict, Secure over https."""
    response.set_cookie(
        SESSION_COOKIE,
        session_token(key),
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response) -> None:
    """Log the browser out."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def same_origin(request: Request) -> bool:
    """Whether the request says it comes from a page of this host (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host")
    if not source or source == "null" or not host:
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else "/": the login never redirects away."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
        or urlsplit(target).netloc
    ):
        return "/"
    return target


def login_url(request: Request) -> str:
    """The login page, coming back to this request's page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?next={quote(safe_next(here), safe='/')}"


def _is_public(request: Request) -> bool:
    route = request.scope.get("route")
    return getattr(getattr(route, "endpoint", None), _PUBLIC_ATTRIBUTE, False)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


def _wants_page(request: Request) -> bool:
    return request.method in {"GET", "HEAD"} and "text/html" in request.headers.get("accept", "")


async def require_api_key(request: Request) -> None:
    """Let the request through with the bearer key or a valid session cookie; else a page
    load goes to the login page (303) and anything else gets 401."""
    expected: SecretStr | None = request.app.state.settings.api_key
    if expected is None or _is_public(request):
        return
    bearer = _bearer(request)
    if bearer is not None and key_matches(bearer, expected):
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if bearer is None and cookie and session_is_valid(cookie, expected):
        if request.method in UNSAFE_METHODS and not same_origin(request):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail="Refused a cross-site request: submit the form from Fawn's own pages "
                "(or call the API with `Authorization: Bearer <FAWN_API_KEY>`).",
            )
        return
    if _wants_page(request):
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            detail="Log in with the API key to continue.",
            headers={"Location": login_url(request)},
        )
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="Missing or wrong API key: send `Authorization: Bearer <FAWN_API_KEY>`.",
        headers={"WWW-Authenticate": "Bearer"},
    )
