"""The local corpus: a real SQLite FTS5 file, bm25 ranking, idempotent adds, hostile queries."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agents.errors import SearchError
from agents.tools.corpus import Document, LocalCorpus, LocalSearch, fts_query
from agents.tools.ingest import load_documents
from agents.tools.search import SearchHit, corpus_path, make_provider

DOCS = [
    Document.passage(
        title="Arthur's Magazine",
        url="https://en.wikipedia.org/wiki/Arthur%27s_Magazine",
        text="Arthur's Magazine (1844–1846) was an American literary periodical published in "
        "Philadelphia in the 19th century.",
    ),
    Document.passage(
        title="First for Women",
        url="https://en.wikipedia.org/wiki/First_for_Women",
        text="First for Women is a woman's magazine published by Bauer Media Group in the USA. "
        "The magazine was started in 1989.",
    ),
    Document.passage(
        title="Radio City (Indian radio station)",
        url="https://en.wikipedia.org/wiki/Radio_City_(Indian_radio_station)",
        text="Radio City is India's first private FM radio station and was started on 3 July 2001.",
    ),
]


@pytest.fixture
def corpus(tmp_path: Path) -> LocalCorpus:
    store = LocalCorpus(tmp_path / "data" / "corpus.sqlite3")
    store.add(DOCS)
    return store


def test_corpus_is_a_sqlite_file_in_wal_mode(corpus: LocalCorpus) -> None:
    assert corpus.path.is_file()
    with sqlite3.connect(corpus.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_search_ranks_the_matching_passage_first(corpus: LocalCorpus) -> None:
    hits = corpus.search("Which magazine was started first, Arthur's Magazine or First for Women?")
    assert {hit.title for hit in hits[:2]} == {"Arthur's Magazine", "First for Women"}
    assert corpus.search("private FM radio station in India")[0].title.startswith("Radio City")
    assert all(isinstance(hit, SearchHit) and hit.provider == "local" for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_search_respects_the_limit(corpus: LocalCorpus) -> None:
    assert len(corpus.search("magazine published started", limit=1)) == 1


def test_readding_the_same_documents_changes_nothing(corpus: LocalCorpus) -> None:
    before = corpus.list_documents()
    result = corpus.add(DOCS)
    assert (result.added, result.updated, result.unchanged, result.removed) == (0, 0, 3, 0)
    assert corpus.list_documents() == before


def test_changed_text_updates_the_passage_in_place(corpus: LocalCorpus) -> None:
    changed = DOCS[2].model_copy(update={"text": "Radio City broadcasts Bollywood music daily."})
    result = corpus.add([changed])
    assert (result.added, result.updated, result.unchanged) == (0, 1, 0)
    assert corpus.count() == 3
    stored = corpus.get(changed.id)
    assert stored is not None and stored.text == changed.text
    assert corpus.search("Bollywood")[0].url == changed.url
    assert corpus.search("July 2001") == []  # the old text is gone from the index too


def test_a_shorter_new_version_drops_its_stale_chunks(tmp_path: Path) -> None:
    file = tmp_path / "essay.txt"
    file.write_text(" ".join(f"Paragraph sentence {n} about glaciers." for n in range(200)))
    corpus = LocalCorpus(tmp_path / "corpus.sqlite3")
    first = corpus.add(load_documents(file))
    assert first.added > 1
    file.write_text("Glaciers are slow rivers of ice.")
    second = corpus.add(load_documents(file))
    assert (second.updated, second.removed) == (1, first.added - 1)
    assert [d.text for d in corpus.list_documents()] == ["Glaciers are slow rivers of ice."]


@pytest.mark.parametrize(
    "query",
    [
        'Who said "hello world?',
        "AND OR NOT",
        "NEAR(radio station, 2)",
        "title:radio",
        "radio*",
        "-radio +station ^first",
        "What's India's first private FM station?!",
        "{radio} [station] (first)",
        "radio' OR 1=1; --",
        "Zürich – café “quoted” 北京",
        "\x00radio\n\tstation",
    ],
)
def test_queries_with_fts5_syntax_or_punctuation_are_searched_as_words(
    corpus: LocalCorpus, query: str
) -> None:
    hits = corpus.search(query)
    assert isinstance(hits, list)
    if "radio" in query:
        assert hits[0].title == "Radio City (Indian radio station)"


def test_query_words_are_quoted_and_ored_without_stopwords() -> None:
    assert fts_query('Was "Radio City" the first?') == '"radio" OR "city" OR "first"'


def test_a_question_of_only_stopwords_still_searches_its_words() -> None:
    assert fts_query("Who was it?") == '"who" OR "was" OR "it"'


@pytest.mark.parametrize("query", ["", "   ", "?!.,;", '"" ()'])
def test_an_empty_query_is_a_clear_error(corpus: LocalCorpus, query: str) -> None:
    with pytest.raises(SearchError, match="query is empty"):
        corpus.search(query)


def test_searching_an_empty_corpus_says_how_to_fill_it(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="fawn corpus add"):
        LocalCorpus(tmp_path / "corpus.sqlite3").search("anything")


def test_get_delete_and_count(corpus: LocalCorpus) -> None:
    doc = DOCS[0]
    stored = corpus.get(doc.id)
    assert stored is not None
    assert (stored.title, stored.url, stored.text) == (doc.title, doc.url, doc.text)
    assert stored.added_at is not None
    assert corpus.delete(doc.id) is True
    assert corpus.delete(doc.id) is False
    assert corpus.get(doc.id) is None
    assert corpus.count() == 2
    assert all(hit.url != doc.url for hit in corpus.search("Arthur's Magazine Philadelphia"))


def test_delete_url_removes_every_passage_of_a_document(tmp_path: Path) -> None:
    file = tmp_path / "essay.txt"
    file.write_text(" ".join(f"Sentence {n} about volcanoes." for n in range(300)))
    corpus = LocalCorpus(tmp_path / "corpus.sqlite3")
    added = corpus.add(load_documents(file)).added
    assert corpus.delete_url(file.resolve().as_uri()) == added
    assert corpus.count() == 0


def test_list_documents_pages_in_insertion_order(corpus: LocalCorpus) -> None:
    assert [d.id for d in corpus.list_documents()] == [d.id for d in DOCS]
    assert [d.id for d in corpus.list_documents(limit=1, offset=1)] == [DOCS[1].id]


def test_a_section_heading_is_searched_and_names_the_hit(tmp_path: Path) -> None:
    corpus = LocalCorpus(tmp_path / "corpus.sqlite3")
    guide = "file:///docs/s3.rst"
    corpus.add(
        [
            Document.passage(title="S3 guide", url=guide, text="Sizes are in MiB.", chunk=0,
                             section="Multipart uploads"),
            Document.passage(title="S3 guide", url=guide, text="Buckets hold objects.", chunk=1,
                             section="Buckets"),
        ]
    )  # fmt: skip
    [hit, *_] = corpus.search("multipart")
    assert (hit.title, hit.passage) == ("S3 guide › Multipart uploads", "Sizes are in MiB.")
    [(doc, score), *_] = corpus.ranked("multipart")
    assert (doc.title, doc.section, doc.chunk, score) == (
        "S3 guide",
        "Multipart uploads",
        0,
        hit.score,
    )
    assert corpus.search("Radio")[0:1] == []


def test_a_new_section_heading_updates_the_passage(tmp_path: Path) -> None:
    corpus = LocalCorpus(tmp_path / "corpus.sqlite3")
    doc = Document.passage(title="Guide", url="file:///g.md", text="Text.", section="Old")
    corpus.add([doc])
    result = corpus.add([doc.model_copy(update={"section": "New"})])
    assert (result.updated, result.unchanged) == (1, 0)
    assert corpus.search("new")[0].title == "Guide › New"
    assert corpus.search("old") == []


# The schema of format 1 (before sections), as Fawn wrote it until issue 14.
FORMAT_1 = """
CREATE TABLE passages (pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, url TEXT NOT NULL,
    chunk INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE INDEX passages_url ON passages (url);
CREATE VIRTUAL TABLE passages_fts USING fts5 (title, text, content='passages',
    content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER passages_ai AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, title, text) VALUES (new.pk, new.title, new.text); END;
CREATE TRIGGER passages_ad AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, text)
    VALUES ('delete', old.pk, old.title, old.text); END;
CREATE TRIGGER passages_au AFTER UPDATE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, text)
    VALUES ('delete', old.pk, old.title, old.text);
    INSERT INTO passages_fts (rowid, title, text) VALUES (new.pk, new.title, new.text); END;
PRAGMA user_version = 1;
"""


def test_a_corpus_of_format_1_is_migrated_keeping_its_passages_searchable(tmp_path: Path) -> None:
    path = tmp_path / "corpus.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(FORMAT_1)
        db.executemany(
            "INSERT INTO passages (id, url, chunk, title, text, added_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')",
            [(d.id, d.url, d.chunk, d.title, d.text) for d in DOCS],
        )
    corpus = LocalCorpus(path)
    assert corpus.search("private FM radio station")[0].title == DOCS[2].title
    assert [(d.id, d.section) for d in corpus.list_documents()] == [(d.id, "") for d in DOCS]
    assert corpus.add(DOCS).unchanged == 3
    corpus.add([DOCS[0].model_copy(update={"section": "History"})])
    assert corpus.search("history")[0].title == "Arthur's Magazine › History"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_corpus_of_another_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corpus.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(SearchError, match="format 99"):
        LocalCorpus(path)


def test_a_file_that_is_not_sqlite_is_a_search_error(tmp_path: Path) -> None:
    path = tmp_path / "corpus.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SearchError, match="corpus"):
        LocalCorpus(path)


async def test_local_provider_searches_the_corpus_under_the_data_dir(tmp_path: Path) -> None:
    LocalCorpus(corpus_path(tmp_path)).add(DOCS)
    provider = make_provider("local", data_dir=tmp_path)
    assert isinstance(provider, LocalSearch)
    hits = await provider.search("India private FM radio", 2)
    assert hits[0].title == "Radio City (Indian radio station)"
    assert len(hits) <= 2


def test_unknown_provider_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="use 'local'"):
        make_provider("bing", data_dir=tmp_path)  # type: ignore[arg-type]


def test_bm25_finds_hotpotqa_gold_paragraphs_for_raw_questions(
    hotpotqa_path: Path, tmp_path: Path
) -> None:
    corpus = LocalCorpus(tmp_path / "corpus.sqlite3")
    corpus.add(load_documents(hotpotqa_path))
    questions = json.loads(hotpotqa_path.read_text())
    found = wanted = 0
    for question in questions:
        gold = {title for title, _ in question["supporting_facts"]}
        titles = [hit.title for hit in corpus.search(question["question"], 10)]
        assert gold & set(titles[:5]), f"no gold title in the top 5 for {question['question']!r}"
        found += len(gold & set(titles))
        wanted += len(gold)
    # Bridge questions name only one of their two paragraphs; a second hop finds the other.
    assert found / wanted >= 0.9
