"""Bearer API keys: optional on loopback, required when the API is bound to any other address."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request, status

from app.settings import LOOPBACK_HOSTS, Settings
from serving.errors import ConfigError


def check_bind_is_safe(settings: Settings) -> None:
    """Refuse to serve off loopback without an API key."""
    if settings.host not in LOOPBACK_HOSTS and settings.api_key is None:
        raise ConfigError(
            f"Binding the API to {settings.host} needs an API key: set FAWN_API_KEY "
            "(clients send `Authorization: Bearer <key>`), or bind to 127.0.0.1."
        )


async def require_api_key(request: Request) -> None:
    """Reject requests without the configured bearer key (no key configured: allow all)."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        token.encode(), expected.get_secret_value().encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Missing or wrong API key: send `Authorization: Bearer <FAWN_API_KEY>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
