"""Turning real files of every supported format into corpus passages."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from agents.errors import SearchError
from agents.tools.corpus import Document, document_id
from agents.tools.ingest import (
    CHUNK_OVERLAP_WORDS,
    CHUNK_WORDS,
    ReadFile,
    SkippedFile,
    SkipReason,
    chunk_text,
    is_hotpotqa,
    load_documents,
    read_path,
    wikipedia_url,
)
from tests.document_files import EVERY_FORMAT, PLAIN_TEXT, write_every_format, zip_bytes


def minimal_pdf(text: str, title: str) -> bytes:
    """A real one-page PDF (Helvetica text, an Info title) written by hand, xref offsets and all."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        f"<< /Title ({title}) >>".encode(),
    ]
    pdf = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    pdf += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(pdf)


def long_text(sentences: int) -> str:
    return " ".join(
        f"Sentence number {n} is about topic {n % 7} in the corpus." for n in range(sentences)
    )


def test_markdown_takes_its_title_from_the_first_heading(tmp_path: Path) -> None:
    file = tmp_path / "notes.md"
    file.write_text("Intro line.\n\n# Bees and pollination\n\nBees carry pollen between flowers.\n")
    intro, doc = load_documents(file)
    assert (intro.title, intro.section, intro.text) == ("Bees and pollination", "", "Intro line.")
    assert doc.title == "Bees and pollination"
    assert doc.url == file.resolve().as_uri()
    assert doc.url.startswith("file:///")
    assert doc.text == "Bees carry pollen between flowers."
    assert (intro.id, doc.id) == (document_id(doc.url), document_id(doc.url, 1))


def test_passages_carry_the_heading_path_of_their_section(tmp_path: Path) -> None:
    file = tmp_path / "guide.md"
    file.write_text(
        "# AWS CLI guide\n\n## S3\n\n### Multipart\n\nUploads split at 8 MiB.\n\n"
        "```\n# not a heading\n```\n\n## EC2\n\nInstances boot.\n"
    )
    docs = list(load_documents(file))
    assert [(d.title, d.section, d.chunk) for d in docs] == [
        ("AWS CLI guide", "S3 › Multipart", 0),
        ("AWS CLI guide", "EC2", 1),
    ]
    assert "# not a heading" in docs[0].text
    assert docs[0].heading == "AWS CLI guide › S3 › Multipart"


def test_a_long_section_is_split_into_passages_that_all_carry_it(tmp_path: Path) -> None:
    file = tmp_path / "long.md"
    file.write_text(f"# Book\n\n## Chapter\n\n{long_text(120)}\n")
    docs = list(load_documents(file))
    assert len(docs) > 1
    assert {(d.title, d.section) for d in docs} == {("Book", "Chapter")}
    assert [d.chunk for d in docs] == list(range(len(docs)))


def test_text_file_is_titled_by_its_name(tmp_path: Path) -> None:
    file = tmp_path / "river-notes.txt"
    file.write_text("The Danube flows through ten countries.")
    [doc] = load_documents(file)
    assert (doc.title, doc.text, doc.chunk) == ("river-notes", file.read_text(), 0)


def test_html_keeps_the_main_text_and_drops_the_boilerplate(tmp_path: Path) -> None:
    file = tmp_path / "page.html"
    paragraph = "The Hanseatic League was a medieval commercial and defensive confederation. " * 4
    file.write_text(
        "<html><head><title>Hanseatic League</title></head><body>"
        "<nav><ul><li><a href='/'>Home</a></li><li><a href='/x'>Subscribe now</a></li></ul></nav>"
        f"<main><article><h1>Hanseatic League</h1><p>{paragraph}</p></article></main>"
        "</body></html>"
    )
    [doc] = load_documents(file)
    assert doc.title == "Hanseatic League"
    assert "medieval commercial and defensive confederation" in doc.text
    assert "Subscribe now" not in doc.text


def test_a_folder_of_every_format_imports_each_under_its_sections_and_reports_the_rest(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "docs"
    samples = write_every_format(folder)
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "index.json").write_text(json.dumps({"topics": ["s3", "ec2"]}))
    (folder / "binary.txt").write_bytes(b"\xff\xfe\x00\x01\x02")
    (folder / "broken.docx").write_bytes(zip_bytes({"word/nothing.xml": b"<x/>"}))
    (folder / "blank.md").write_text("  \n")

    results = {result.path.name: result for result in read_path(folder)}

    skipped = {name: r.reason for name, r in results.items() if isinstance(r, SkippedFile)}
    assert skipped == {
        "photo.png": SkipReason.UNKNOWN_TYPE,
        "index.json": SkipReason.NOT_RECORDS,
        "binary.txt": SkipReason.UNREADABLE,
        "broken.docx": SkipReason.UNREADABLE,
        "blank.md": SkipReason.EMPTY,
    }
    assert "record 1 has no `text`" in str(results["index.json"])
    assert "unknown type .png" in str(results["photo.png"])
    for name, sample in samples.items():
        result = results[name]
        assert isinstance(result, ReadFile), f"{name}: {result}"
        assert {d.title for d in result.documents} == {sample.title}, name
        holding = passage_with(result.documents, sample.text)
        assert holding.section.endswith(sample.section), (name, holding.section)
        assert holding.url == (folder / name).resolve().as_uri()
    comets = results[PLAIN_TEXT[0]]
    assert isinstance(comets, ReadFile)
    assert [(d.title, d.section, d.text) for d in comets.documents] == [
        ("comets", "", PLAIN_TEXT[1])
    ]
    assert len(results) == len(EVERY_FORMAT) + 1 + len(skipped)
    every_text = " ".join(
        d.text for r in results.values() if isinstance(r, ReadFile) for d in r.documents
    )
    assert "<!--" not in every_text  # markup of the converters (slide numbers) is left out


def passage_with(documents: list[Document], text: str) -> Document:
    """The one passage that holds `text` (the sentence of a written sample)."""
    [holding] = [d for d in documents if text in d.text]
    return holding


def test_an_html_menu_and_an_rst_include_stay_out_of_the_passages(tmp_path: Path) -> None:
    write_every_format(tmp_path)
    page = " ".join(d.text for d in load_documents(tmp_path / "page.html"))
    guide = " ".join(d.text for d in load_documents(tmp_path / "guide.rst"))
    assert "Subscribe now" not in page
    assert Path("/etc/hostname").read_text().strip() not in guide
    assert "include" not in guide


def test_pdf_text_and_title_are_extracted(tmp_path: Path) -> None:
    file = tmp_path / "paper.pdf"
    file.write_bytes(minimal_pdf("Fawn reads PDF files offline.", "A tiny paper"))
    [doc] = load_documents(file)
    assert doc.title == "A tiny paper"
    assert "Fawn reads PDF files offline." in doc.text


def test_a_broken_pdf_is_a_search_error(tmp_path: Path) -> None:
    file = tmp_path / "broken.pdf"
    file.write_bytes(b"%PDF-1.4\nthis is not a pdf body")
    with pytest.raises(SkippedFile, match=r"cannot be read as a \.pdf file"):
        list(load_documents(file))


def test_json_and_jsonl_records_become_documents(tmp_path: Path) -> None:
    records = [
        {"title": "Alpha", "url": "https://example.org/alpha", "text": "Alpha text."},
        {"text": "A record with no title or url."},
    ]
    (tmp_path / "records.json").write_text(json.dumps(records))
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    for name in ("records.json", "records.jsonl"):
        first, second = load_documents(tmp_path / name)
        assert (first.title, first.url, first.text) == (
            "Alpha",
            "https://example.org/alpha",
            "Alpha text.",
        )
        assert second.url == (tmp_path / name).resolve().as_uri() + "#record=2"
        assert second.title == "records 2"


def test_a_record_without_text_is_refused_with_the_expected_shape(tmp_path: Path) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text(json.dumps({"title": "no text here"}) + "\n")
    with pytest.raises(SkippedFile, match=r"is not records: record 1 has no `text`"):
        list(load_documents(file))


def test_invalid_json_is_a_search_error(tmp_path: Path) -> None:
    file = tmp_path / "bad.json"
    file.write_text('[{"title": "x", ')
    with pytest.raises(SearchError, match="not valid JSON"):
        list(load_documents(file))


def test_hotpotqa_file_becomes_one_passage_per_distinct_paragraph(hotpotqa_path: Path) -> None:
    questions = json.loads(hotpotqa_path.read_text())
    paragraphs = [(title, "".join(s).strip()) for q in questions for title, s in q["context"]]
    docs = list(load_documents(hotpotqa_path))
    assert len(paragraphs) == 200
    assert len(docs) == len(set(paragraphs))
    assert len(docs) in (199, 200)
    assert {(d.title, d.text) for d in docs} == set(paragraphs)
    assert len({d.id for d in docs}) == len(docs)
    for doc in docs:
        assert doc.url == "https://en.wikipedia.org/wiki/" + doc.title.replace(" ", "_")


def test_hotpotqa_detection_needs_the_context_shape() -> None:
    assert is_hotpotqa([{"question": "q", "context": [["Title", ["One.", " Two."]]]}])
    assert not is_hotpotqa([{"title": "Title", "text": "One."}])
    assert not is_hotpotqa([{"context": "not a list of paragraphs"}])
    assert not is_hotpotqa([])


def test_hotpotqa_title_with_two_different_paragraphs_keeps_both(tmp_path: Path) -> None:
    questions = [
        {"context": [["Same Title", ["First text."]], ["Other", ["Other text."]]]},
        {"context": [["Same Title", ["Second text."]], ["Same Title", ["First text."]]]},
    ]
    file = tmp_path / "hotpot.json"
    file.write_text(json.dumps(questions))
    docs = list(load_documents(file))
    same = [d for d in docs if d.title == "Same Title"]
    assert [(d.text, d.chunk) for d in same] == [("First text.", 0), ("Second text.", 1)]
    assert len({d.id for d in docs}) == 3
    assert same[0].url == wikipedia_url("Same Title") == "https://en.wikipedia.org/wiki/Same_Title"


def test_long_text_is_split_into_overlapping_chunks_of_whole_sentences() -> None:
    text = long_text(120)
    chunks = chunk_text(text)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk.split()) <= CHUNK_WORDS
        assert chunk.endswith(".")
    for before, after in itertools.pairwise(chunks):
        shared = overlap(before.split(". "), after.split(". "))
        assert 0 < len(" ".join(shared).split()) <= CHUNK_OVERLAP_WORDS
    text_sentences = {s.rstrip(".") for s in text.split(". ")}
    assert text_sentences == {s.rstrip(".") for c in chunks for s in c.split(". ")}


def overlap(before: list[str], after: list[str]) -> list[str]:
    """The longest run of sentences that ends `before` and starts `after`."""
    for size in range(min(len(before), len(after)), 0, -1):
        if [s.rstrip(".") for s in before[-size:]] == [s.rstrip(".") for s in after[:size]]:
            return before[-size:]
    return []


def test_a_sentence_longer_than_a_chunk_is_cut_by_words() -> None:
    chunks = chunk_text("word " * (CHUNK_WORDS * 2 + 10))
    assert [len(c.split()) for c in chunks] == [CHUNK_WORDS, CHUNK_WORDS, 10]


def test_a_long_file_becomes_numbered_passages_with_distinct_ids(tmp_path: Path) -> None:
    file = tmp_path / "long.txt"
    file.write_text(long_text(120))
    docs = list(load_documents(file))
    assert [d.chunk for d in docs] == list(range(len(docs)))
    assert len(docs) > 1
    assert len({d.id for d in docs}) == len(docs)
    assert all(d.title == "long" and d.url == docs[0].url for d in docs)


def test_a_folder_is_walked_recursively_leaving_out_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.md").write_text("# A\n\nFirst.")
    (tmp_path / "sub" / "b.txt").write_text("Second.")
    (tmp_path / ".git" / "c.txt").write_text("Hidden.")
    (tmp_path / ".hidden.md").write_text("Hidden too.")
    docs = list(load_documents(tmp_path))
    assert sorted((d.title, d.text) for d in docs) == [("A", "First."), ("b", "Second.")]


def test_load_documents_stops_at_a_file_it_cannot_read_naming_it_and_why(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\nFirst.")
    (tmp_path / "b.json").write_text('{"not": "records"}')
    with pytest.raises(SkippedFile, match=r"b\.json is not records") as raised:
        list(load_documents(tmp_path))
    assert raised.value.reason is SkipReason.NOT_RECORDS


def test_an_empty_file_is_skipped_as_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(SkippedFile, match="holds no text") as raised:
        list(load_documents(tmp_path / "empty.txt"))
    assert raised.value.reason is SkipReason.EMPTY


def test_missing_and_unsupported_paths_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="does not exist"):
        list(load_documents(tmp_path / "nope.md"))
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    with pytest.raises(SearchError, match=r"supported files are .*\.pdf"):
        list(load_documents(tmp_path / "sheet.xlsx"))
