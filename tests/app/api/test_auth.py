"""API keys for browsers: the login page, its session cookie, the CSRF check, no open redirect.

The app is the real one (real engine, real SQLite job store) with FAWN_API_KEY set, driven over
HTTP by a client that behaves as a browser would: it keeps cookies, and says where a form was
posted from in the Origin header.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api.app import create_app
from app.api.auth import SESSION_COOKIE, SESSION_TTL_S, safe_next, session_is_valid, session_token
from app.jobs.models import JobStatus
from app.jobs.store import JobStore
from serving.endpoint import Endpoint
from tests.app.api.conftest import api_settings

KEY = "k3y-for-the-auth-tests"
PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
SAME_ORIGIN = {"Origin": "http://testserver"}
engine_test = pytest.mark.engine


@pytest.fixture(scope="module")
def app_client(engine: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = api_settings(engine, tmp_path_factory.mktemp("auth-data"), api_key=KEY)
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """The module's client with no cookies: every test starts logged out."""
    app_client.cookies.clear()
    return app_client


def log_in(client: TestClient, key: str = KEY, target: str = "/") -> str:
    """Post the login form; returns where it redirected to."""
    response = client.post("/login", data={"key": key, "next": target}, headers=SAME_ORIGIN)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def done_job(client: TestClient) -> str:
    store: JobStore = client.app.state.store  # type: ignore[attr-defined]
    job = store.create("What is the longest river in Africa?", {})
    return store.update(job.id, status=JobStatus.DONE, report="# Rivers\n\nThe Nile.\n").id


def test_session_token_verifies_only_with_its_key_and_until_it_expires() -> None:
    key = SecretStr(KEY)
    token = session_token(key, now=1000.0)
    assert KEY not in token
    assert session_is_valid(token, key, now=1000.0 + SESSION_TTL_S - 1)
    assert not session_is_valid(token, key, now=1000.0 + SESSION_TTL_S + 1)
    assert not session_is_valid(token, SecretStr("another key"), now=1000.0)
    expires, _, signature = token.partition(".")
    assert not session_is_valid(f"{int(expires) + 3600}.{signature}", key, now=1000.0)
    assert not session_is_valid("not-a-token", key, now=1000.0)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/jobs/abc?tab=report", "/jobs/abc?tab=report"),
        ("/history", "/history"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/\tjobs", "/"),
        ("", "/"),
    ],
)
def test_next_target_stays_on_this_site(target: str, expected: str) -> None:
    assert safe_next(target) == expected


@engine_test
def test_page_without_login_redirects_to_the_login_page_and_back(client: TestClient) -> None:
    job_id = done_job(client)
    response = client.get(f"/jobs/{job_id}/report", headers=PAGE)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next=/jobs/{job_id}/report"
    login = client.get(response.headers["location"])
    assert login.status_code == 200
    assert f'name="next" value="/jobs/{job_id}/report"' in login.text

    assert log_in(client, target=f"/jobs/{job_id}/report") == f"/jobs/{job_id}/report"
    report = client.get(f"/jobs/{job_id}/report", headers=PAGE)
    assert report.status_code == 200
    assert "The Nile." in report.text


@engine_test
def test_api_without_key_is_401_json(client: TestClient) -> None:
    for response in (
        client.get("/api/research", headers={"Accept": "application/json"}),
        client.get("/api/research/x/events", headers={"Accept": "text/event-stream"}),
        client.post("/api/research", json={"question": "Why is the sky blue?"}),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["detail"]


@engine_test
def test_wrong_key_shows_the_error_and_sets_no_cookie(client: TestClient) -> None:
    response = client.post("/login", data={"key": "guess", "next": "/"}, headers=SAME_ORIGIN)
    assert response.status_code == 401
    assert "That is not the API key" in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/", headers=PAGE).status_code == 303


@engine_test
def test_right_key_sets_a_strict_httponly_cookie_that_is_not_the_key(client: TestClient) -> None:
    response = client.post("/login", data={"key": KEY, "next": "/"}, headers=SAME_ORIGIN)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert KEY not in cookie
    job_id = done_job(client)
    assert client.get("/", headers=PAGE).status_code == 200
    assert (
        client.get(f"/api/research/{job_id}", headers={"Accept": "application/json"}).json()[
            "status"
        ]
        == "done"
    )


@engine_test
def test_cookie_over_https_is_secure(app_client: TestClient) -> None:
    # Not entered as a context: a second lifespan would close the module client's job store.
    https = TestClient(app_client.app, base_url="https://testserver", follow_redirects=False)
    response = https.post(
        "/login", data={"key": KEY, "next": "/"}, headers={"Origin": "https://testserver"}
    )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


@engine_test
@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "http:/evil"]
)
def test_login_never_redirects_off_site(client: TestClient, target: str) -> None:
    assert log_in(client, target=target) == "/"
    page = client.get("/login", params={"next": target})
    assert 'name="next" value="/"' in page.text


@engine_test
def test_cookie_authenticated_posts_must_come_from_this_site(client: TestClient) -> None:
    log_in(client)
    store: JobStore = client.app.state.store  # type: ignore[attr-defined]
    job_id = done_job(client)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {}):
        refused = client.post(f"/jobs/{job_id}/delete", headers={**PAGE, **headers})
        assert refused.status_code == 403
        assert "cross-site" in refused.text
        assert client.post(f"/api/research/{job_id}/podcast", headers=headers).status_code == 403
    assert store.get(job_id) is not None

    allowed = client.post(f"/jobs/{job_id}/delete", headers={**PAGE, **SAME_ORIGIN})
    assert allowed.status_code == 303
    assert store.get(job_id) is None


@engine_test
def test_bearer_key_needs_no_cookie_and_no_origin(client: TestClient) -> None:
    job_id = done_job(client)
    response = client.delete(f"/api/research/{job_id}", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code in (200, 204)
    wrong = client.delete(f"/api/research/{job_id}", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


@engine_test
def test_tampered_cookie_is_refused(client: TestClient) -> None:
    client.cookies.set(SESSION_COOKIE, session_token(SecretStr("not the key")))
    assert client.get("/", headers=PAGE).status_code == 303
    assert client.get("/api/research").status_code == 401


@engine_test
def test_logout_forgets_the_session(client: TestClient) -> None:
    log_in(client)
    assert client.get("/", headers=PAGE).status_code == 200
    response = client.post("/logout", headers=SAME_ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/", headers=PAGE).status_code == 303


@engine_test
def test_login_page_and_static_files_need_no_key(client: TestClient) -> None:
    assert client.get("/login", headers=PAGE).status_code == 200
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/swagger-ui-bundle.js").status_code == 200
