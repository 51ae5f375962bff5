"""The login page for deployments with an API key: the key, typed once, becomes a session cookie.

Browsers cannot send `Authorization: Bearer` on page loads and form posts, so with FAWN_API_KEY
set the pages would be unusable; `app.api.auth` explains the cookie and the CSRF check.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import SecretStr

from app.api.auth import (
    LOGIN_PATH,
    clear_session_cookie,
    key_matches,
    public,
    safe_next,
    same_origin,
    set_session_cookie,
)
from app.web.html import HtmlRoute, error_page, page

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
MAX_KEY_CHARS = 1000


def _api_key(request: Request) -> SecretStr | None:
    return request.app.state.settings.api_key


def _login_page(request: Request, target: str, *, error: str | None, status_code: int) -> Response:
    return page(
        request,
        "login.html",
        {"next": target, "error": error, "needs_key": _api_key(request) is not None},
        status_code=status_code,
    )


@router.get(LOGIN_PATH, name="login_form")
@public
async def login_form(
    request: Request, next_: Annotated[str, Query(alias="next", max_length=2000)] = "/"
) -> Response:
    """The form asking for the API key."""
    return _login_page(request, safe_next(next_), error=None, status_code=status.HTTP_200_OK)


@router.post(LOGIN_PATH, name="login")
@public
async def login(request: Request) -> Response:
    """Check the key; right: set the session cookie and go on to `next`; wrong: say so."""
    if not same_origin(request):
        return error_page(request, status.HTTP_403_FORBIDDEN, "Log in from Fawn's own login page.")
    form = await request.form()
    target = safe_next(str(form.get("next", "/")))
    key = _api_key(request)
    if key is None:  # nothing to log into
        return RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    typed = str(form.get("key", ""))[:MAX_KEY_CHARS]
    if not key_matches(typed, key):
        return _login_page(
            request,
            target,
            error="That is not the API key. Use the value of FAWN_API_KEY the server runs with.",
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, request, key)
    return response


@router.post("/logout", name="logout")
@public
async def logout(request: Request) -> Response:
    """Forget the session cookie, back to the login page."""
    if not same_origin(request):
        return error_page(request, status.HTTP_403_FORBIDDEN, "Log out from Fawn's own pages.")
    response = RedirectResponse(LOGIN_PATH, status.HTTP_303_SEE_OTHER)
    clear_session_cookie(response)
    return response
