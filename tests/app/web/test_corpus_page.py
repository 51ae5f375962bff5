"""The corpus page's search and its upload report, as HTML from the real app and a real corpus.

The page needs no engine: the app is built but never started (no lifespan runs). The browser test
of upload and delete is in test_pages.py.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings
from tests.document_files import EVERY_FORMAT

HOSTILE = (
    "# Evil &lt;script&gt; handbook\n\n"
    "## Zanzibar &lt;img src=x onerror=alert(2)&gt;\n\n"
    "Zanzibar spice <script>alert(1)</script> and <b>cloves</b> & nutmeg.\n"
)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "data")))


def upload(client: TestClient, *files: tuple[str, bytes]) -> str:
    """Upload `files` through the page's form; the page it ends on."""
    response = client.post("/corpus/upload", files=[("file", file) for file in files])
    assert response.status_code == 200, response.text
    return response.text


def results(page: str) -> str:
    """The search results section of a corpus page."""
    found = re.search(r'<section id="corpus-results".*?</section>', page, re.S)
    assert found, "no search results on the page"
    return found.group(0)


def test_search_shows_title_section_and_passage_escaped(client: TestClient) -> None:
    upload(client, ("evil.md", HOSTILE.encode()))
    response = client.get("/corpus", params={"q": "zanzibar spice"})
    assert response.status_code == 200
    hits = results(response.text)
    assert "1 passage matches “zanzibar spice”" in hits
    assert html.escape("Evil <script> handbook", quote=False) in hits
    assert html.escape("Zanzibar <img src=x onerror=alert(2)>", quote=False) in hits
    assert "Zanzibar spice &lt;script&gt;alert(1)&lt;/script&gt; and &lt;b&gt;cloves" in hits
    assert "<script>" not in hits and "<img" not in hits and "<b>" not in hits


def test_search_finds_a_word_document_under_its_section(client: TestClient) -> None:
    write, sample = EVERY_FORMAT["report.docx"]
    upload(client, ("report.docx", write(sample)))
    hits = results(client.get("/corpus", params={"q": "How long is Aletsch?"}).text)
    assert re.search(rf'<span class="title">{sample.title}</span>\s*'
                     rf'<span class="muted section">{sample.section}</span>', hits)  # fmt: skip
    assert sample.text in hits


def test_a_search_that_matches_nothing_says_so_and_the_form_keeps_the_query(
    client: TestClient,
) -> None:
    upload(client, ("evil.md", HOSTILE.encode()))
    page = client.get("/corpus", params={"q": 'quokka "<q>'}).text
    assert "0 passages match “quokka &#34;&lt;q&gt;”" in results(page)
    assert 'value="quokka &#34;&lt;q&gt;"' in page


def test_an_empty_corpus_has_no_hits_rather_than_an_error(client: TestClient) -> None:
    response = client.get("/corpus", params={"q": "anything"})
    assert response.status_code == 200
    assert "0 passages match" in results(response.text)


def test_a_query_without_words_is_422_naming_the_field(client: TestClient) -> None:
    response = client.get("/corpus", params={"q": " ?! "})
    assert response.status_code == 422
    assert "q: give some words to search for." in response.text


def test_an_upload_that_skipped_files_shows_each_with_its_reason(client: TestClient) -> None:
    page = upload(
        client,
        ("tides.md", b"# Tides\n\n## Fundy\n\nFundy tides reach 16 metres.\n"),
        ("tool<b>.exe", b"MZ\x90\x00"),
        ("blank.txt", b"  \n"),
    )
    assert "Upload done: 1 passage added or updated." in page
    skipped = re.search(r'<section id="corpus-skipped".*?</section>', page, re.S)
    assert skipped, "no report of skipped files"
    assert re.findall(r'data-reason="(\w+)"', skipped.group(0)) == ["unknown_type", "empty"]
    assert "file: blank.txt holds no text." in skipped.group(0)
    assert "tool&lt;b&gt;.exe" in skipped.group(0)
    assert "Tides › Fundy" in page  # the listing shows the new passage with its section


def test_a_folder_upload_adds_its_files_by_their_own_names(client: TestClient) -> None:
    # A browser sends a chosen folder's files with their paths inside it as their names.
    page = upload(
        client,
        ("guides/s3/multipart.md", b"# Multipart\n\nUploads split at 8 MiB.\n"),
        ("guides/.DS_Store", b"\x00\x00\x00\x01Bud1"),
    )
    assert re.findall(r'data-reason="(\w+)"', page) == ["unknown_type"]
    hits = results(client.get("/corpus", params={"q": "multipart split"}).text)
    assert '<span class="title">Multipart</span>' in hits
    assert re.search(r"/uploads/\w+-multipart\.md<", hits)


def test_an_upload_of_only_refused_files_is_an_error_naming_the_field(client: TestClient) -> None:
    response = client.post("/corpus/upload", files=[("file", ("tool.exe", b"MZ"))])
    assert response.status_code == 415
    assert "file: upload a " in response.text
