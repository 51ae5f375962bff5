"""The corpus API on a real SQLite corpus: list, upload (type- and size-checked, file by file
with a report of what was skipped), delete.

The corpus routes need no engine: the app is built but never started (no lifespan runs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.api.corpus import MAX_UPLOAD_BYTES
from app.corpus import MAX_UPLOAD_FILES
from app.settings import Settings
from tests.app.api.conftest import build_corpus
from tests.document_files import EVERY_FORMAT, zip_bytes


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, hotpotqa_path: Path) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("corpus-api")
    build_corpus(data_dir, hotpotqa_path)
    yield TestClient(create_app(Settings(data_dir=data_dir)))


def test_listing_shows_the_hotpotqa_passages(client: TestClient) -> None:
    page = client.get("/api/corpus", params={"limit": 5}).json()
    assert page["total"] >= 199
    assert len(page["documents"]) == 5
    assert page["documents"][0]["url"].startswith("https://en.wikipedia.org/wiki/")
    assert page["documents"][0]["section"] == ""


def test_uploaded_markdown_becomes_searchable_and_can_be_deleted(client: TestClient) -> None:
    text = "# Fawn field notes\n\nThe quokka colony on Rottnest Island numbers about 12,000.\n"
    response = client.post(
        "/api/corpus/documents", files={"file": ("notes.md", text.encode(), "text/markdown")}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["added"], body["skipped"]) == (1, [])
    [uploaded] = body["files"]
    assert uploaded["filename"] == "notes.md"
    assert uploaded["documents"][0]["title"] == "Fawn field notes"
    doc_id = uploaded["documents"][0]["id"]

    again = client.post(
        "/api/corpus/documents", files={"file": ("notes.md", text.encode(), "text/markdown")}
    ).json()
    assert again["added"] == 0 and again["unchanged"] == 1

    assert client.delete(f"/api/corpus/documents/{doc_id}").status_code == 204
    assert client.delete(f"/api/corpus/documents/{doc_id}").status_code == 404


def test_every_document_format_uploads_at_once_with_its_sections(client: TestClient) -> None:
    files = [
        ("file", (name, write(sample), "application/octet-stream"))
        for name, (write, sample) in EVERY_FORMAT.items()
    ]
    response = client.post("/api/corpus/documents", files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["skipped"] == []
    by_name = {f["filename"]: f for f in body["files"]}
    assert set(by_name) == set(EVERY_FORMAT)
    for name, (_, sample) in EVERY_FORMAT.items():
        documents = by_name[name]["documents"]
        assert {d["title"] for d in documents} == {sample.title}, name
        assert any(d["section"].endswith(sample.section) for d in documents), (name, documents)
    assert body["added"] == sum(len(f["documents"]) for f in body["files"])


def test_an_upload_adds_what_it_can_and_reports_each_file_it_skipped(client: TestClient) -> None:
    files = [
        ("file", ("tides.md", b"# Tides\n\n## Fundy\n\nFundy tides reach 16 metres.\n")),
        ("file", ("tool.exe", b"MZ\x90\x00")),
        ("file", ("broken.docx", zip_bytes({"word/nothing.xml": b"<x/>"}))),
        ("file", ("blank.txt", b"   \n")),
        ("file", ("big.txt", b"a" * (MAX_UPLOAD_BYTES + 1))),
    ]
    response = client.post("/api/corpus/documents", files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert [f["filename"] for f in body["files"]] == ["tides.md"]
    assert body["files"][0]["documents"][0]["section"] == "Fundy"
    reasons = {s["filename"]: s["reason"] for s in body["skipped"]}
    assert reasons == {
        "tool.exe": "unknown_type",
        "broken.docx": "unreadable",
        "blank.txt": "empty",
        "big.txt": "too_large",
    }
    details = {s["filename"]: s["detail"] for s in body["skipped"]}
    assert details["broken.docx"].startswith("file: broken.docx cannot be read as a .docx file")
    assert details["blank.txt"] == "file: blank.txt holds no text."
    assert all(detail.startswith("file:") for detail in details.values())


@pytest.mark.parametrize(
    ("name", "content", "status"),
    [
        ("evil.exe", b"MZ\x90\x00", 415),
        ("fake.pdf", b"<html>not a pdf</html>", 415),
        ("fake.docx", b"plain text, not a zip", 415),
        ("binary.txt", b"\xff\xfe\x00\x01", 415),
        ("big.txt", b"a" * (MAX_UPLOAD_BYTES + 1), 413),
        ("broken.pptx", zip_bytes({"ppt/nothing.xml": b"<x/>"}), 422),
        ("paper.pdf", b"%PDF-1.7 and nothing else", 422),
    ],
)
def test_a_bad_upload_alone_is_refused_naming_the_field(
    client: TestClient, name: str, content: bytes, status: int
) -> None:
    response = client.post("/api/corpus/documents", files={"file": (name, content)})
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith("file:")


def test_an_upload_of_too_many_files_is_422_pointing_to_the_cli(client: TestClient) -> None:
    files = [("file", (f"n{n}.txt", b"Note.")) for n in range(MAX_UPLOAD_FILES + 1)]
    response = client.post("/api/corpus/documents", files=files)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"file: upload at most {MAX_UPLOAD_FILES} files at once; add a larger folder with "
        "`fawn corpus add FOLDER`."
    )


def test_upload_without_a_file_is_422(client: TestClient) -> None:
    response = client.post("/api/corpus/documents")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("file:")
