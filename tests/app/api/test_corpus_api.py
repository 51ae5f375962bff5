"""The corpus API on a real SQLite corpus: list, upload (type- and size-checked), delete."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.corpus import MAX_UPLOAD_BYTES

pytestmark = pytest.mark.engine


def test_listing_shows_the_hotpotqa_passages(client: TestClient) -> None:
    page = client.get("/api/corpus", params={"limit": 5}).json()
    assert page["total"] >= 199
    assert len(page["documents"]) == 5
    assert page["documents"][0]["url"].startswith("https://en.wikipedia.org/wiki/")


def test_uploaded_markdown_becomes_searchable_and_can_be_deleted(client: TestClient) -> None:
    text = "# Fawn field notes\n\nThe quokka colony on Rottnest Island numbers about 12,000.\n"
    response = client.post(
        "/api/corpus/documents", files={"file": ("notes.md", text.encode(), "text/markdown")}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["added"] == 1 and body["documents"][0]["title"] == "Fawn field notes"
    doc_id = body["documents"][0]["id"]

    again = client.post(
        "/api/corpus/documents", files={"file": ("notes.md", text.encode(), "text/markdown")}
    ).json()
    assert again["added"] == 0 and again["unchanged"] == 1

    assert client.delete(f"/api/corpus/documents/{doc_id}").status_code == 204
    assert client.delete(f"/api/corpus/documents/{doc_id}").status_code == 404


@pytest.mark.parametrize(
    ("name", "content", "status"),
    [
        ("evil.exe", b"MZ\x90\x00", 415),
        ("fake.pdf", b"<html>not a pdf</html>", 415),
        ("binary.txt", b"\xff\xfe\x00\x01", 415),
        ("big.txt", b"a" * (MAX_UPLOAD_BYTES + 1), 413),
    ],
)
def test_bad_uploads_are_refused_naming_the_field(
    client: TestClient, name: str, content: bytes, status: int
) -> None:
    response = client.post("/api/corpus/documents", files={"file": (name, content)})
    assert response.status_code == status
    assert response.json()["detail"].startswith("file:")


def test_upload_without_a_file_is_422(client: TestClient) -> None:
    response = client.post("/api/corpus/documents")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("file:")
