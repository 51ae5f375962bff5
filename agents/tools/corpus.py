"""The local corpus: passages in one SQLite file (WAL), searched with FTS5 and ranked by bm25.

A `Document` is one passage: a whole short document, or one chunk of a long one (`chunk` counts
from 0), with the heading path of the section it comes from (`section`, empty when none). Its id
is a hash of its URL (and chunk number), so adding the same file again changes nothing, and
adding a changed file updates its passages in place.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from agents.errors import SearchError
from agents.text import STOPWORDS, unique, words
from agents.tools.search import SearchHit

SCHEMA_VERSION = 2
MAX_QUERY_TERMS = 32
# Matches in a title or a section heading count twice as much as in the text: they name what a
# passage is about.
TITLE_WEIGHT = 2.0
SECTION_WEIGHT = 2.0
TEXT_WEIGHT = 1.0
# A hit's title names its section too, so a model reading sources (and a reader of citations)
# knows which part of a long document a passage is from.
HIT_TITLE_SEPARATOR = " › "

SCHEMA = """
CREATE TABLE IF NOT EXISTS passages (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    title TEXT NOT NULL,
    section TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    added_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_url ON passages (url);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5 (
    title, section, text, content='passages', content_rowid='pk',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS passages_ai AFTER INSERT ON passages BEGIN
    INSERT INTO passages_fts (rowid, title, section, text)
    VALUES (new.pk, new.title, new.section, new.text);
END;
CREATE TRIGGER IF NOT EXISTS passages_ad AFTER DELETE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, section, text)
    VALUES ('delete', old.pk, old.title, old.section, old.text);
END;
CREATE TRIGGER IF NOT EXISTS passages_au AFTER UPDATE ON passages BEGIN
    INSERT INTO passages_fts (passages_fts, rowid, title, section, text)
    VALUES ('delete', old.pk, old.title, old.section, old.text);
    INSERT INTO passages_fts (rowid, title, section, text)
    VALUES (new.pk, new.title, new.section, new.text);
END;
"""
# Version 1 had no sections: add the column, and index it by building the full-text index again.
MIGRATE_FROM_1 = """
ALTER TABLE passages ADD COLUMN section TEXT NOT NULL DEFAULT '';
DROP TRIGGER passages_ai;
DROP TRIGGER passages_ad;
DROP TRIGGER passages_au;
DROP TABLE passages_fts;
"""
_COLUMNS = "id, url, chunk, title, section, text, added_at"


def document_id(url: str, chunk: int = 0) -> str:
    """The stable id of a passage: a hash of its URL, and of its chunk number after the first."""
    key = url if chunk == 0 else f"{url}#chunk={chunk}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class Document(BaseModel):
    """One passage of the corpus; `added_at` is set when it is read back from the store."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    url: str
    text: str
    chunk: int = 0
    section: str = ""
    added_at: datetime | None = None

    @classmethod
    def passage(
        cls, *, title: str, url: str, text: str, chunk: int = 0, section: str = ""
    ) -> Document:
        """A new passage with its stable id."""
        return cls(
            id=document_id(url, chunk),
            title=title,
            url=url,
            text=text,
            chunk=chunk,
            section=section,
        )

    @property
    def heading(self) -> str:
        """The title with the section, if any: what a search hit is called."""
        return HIT_TITLE_SEPARATOR.join(part for part in (self.title, self.section) if part)


@dataclass(frozen=True)
class AddResult:
    """What adding documents changed; `removed` counts chunks a shorter new version dropped."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


def fts_query(query: str) -> str:
    """An FTS5 query for a natural-language question: its content words, quoted and OR-ed.

    Quoting makes every token a literal (no `AND`, `NEAR`, `*`, `:` or `"` syntax reaches FTS5);
    OR lets bm25 rank passages by how many and how rare the matched terms are.
    """
    every = unique([w.lower() for w in words(query)])
    terms = [w for w in every if w not in STOPWORDS] or every
    if not terms:
        raise SearchError("The search query is empty; give some words to search for.")
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms[:MAX_QUERY_TERMS])


class LocalCorpus:
    """Passages in a SQLite file, created on first use; safe to share across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SearchError(f"Cannot create {path.parent} for the corpus: {exc}.") from exc
        with self._connect() as db:
            self._migrate(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: cheap for SQLite, and no connection crosses threads.
        try:
            db = sqlite3.connect(self.path, timeout=10.0)
        except sqlite3.Error as exc:
            raise SearchError(f"Cannot open the corpus at {self.path}: {exc}.") from exc
        try:
            db.row_factory = sqlite3.Row
            with db:
                yield db
        except sqlite3.Error as exc:
            raise SearchError(f"The corpus at {self.path} failed: {exc}.") from exc
        finally:
            db.close()

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, SCHEMA_VERSION):
            raise SearchError(
                f"{self.path} has corpus format {version}, this Fawn reads {SCHEMA_VERSION}; "
                "move it aside and add the documents again."
            )
        db.execute("PRAGMA journal_mode=WAL")
        if version == 1:
            db.executescript(MIGRATE_FROM_1)
        db.executescript(SCHEMA)
        if version == 1:
            db.execute("INSERT INTO passages_fts (passages_fts) VALUES ('rebuild')")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def add(self, docs: Iterable[Document]) -> AddResult:
        """Store `docs`; each URL's passages are replaced as a whole by those given for it."""
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        kept: dict[str, set[str]] = {}
        now = datetime.now(UTC).isoformat()
        with self._connect() as db:
            for doc in docs:
                counts[self._upsert(db, doc, now)] += 1
                kept.setdefault(doc.url, set()).add(doc.id)
            removed = sum(self._drop_stale(db, url, ids) for url, ids in kept.items())
        return AddResult(**counts, removed=removed)

    @staticmethod
    def _upsert(db: sqlite3.Connection, doc: Document, now: str) -> str:
        row = db.execute(
            "SELECT url, title, section, text FROM passages WHERE id = ?", (doc.id,)
        ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO passages (id, url, chunk, title, section, text, added_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.id, doc.url, doc.chunk, doc.title, doc.section, doc.text, now, now),
            )
            return "added"
        if tuple(row) == (doc.url, doc.title, doc.section, doc.text):
            return "unchanged"
        db.execute(
            "UPDATE passages SET url = ?, chunk = ?, title = ?, section = ?, text = ?, "
            "updated_at = ? WHERE id = ?",
            (doc.url, doc.chunk, doc.title, doc.section, doc.text, now, doc.id),
        )
        return "updated"

    @staticmethod
    def _drop_stale(db: sqlite3.Connection, url: str, ids: set[str]) -> int:
        stored = {r[0] for r in db.execute("SELECT id FROM passages WHERE url = ?", (url,))}
        stale = stored - ids
        db.executemany("DELETE FROM passages WHERE id = ?", [(i,) for i in stale])
        return len(stale)

    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        """The `limit` passages that best match `query` by bm25, best first, as search hits."""
        return [
            SearchHit(
                title=doc.heading, url=doc.url, passage=doc.text, score=score, provider="local"
            )
            for doc, score in self.ranked(query, limit)
        ]

    def ranked(self, query: str, limit: int = 10) -> list[tuple[Document, float]]:
        """The `limit` passages that best match `query`, best first, with their bm25 score
        (higher is better)."""
        match = fts_query(query)
        if self.count() == 0:
            raise SearchError(
                f"The local corpus at {self.path} is empty; add documents with "
                "`fawn corpus add PATH`."
            )
        columns = ", ".join(f"p.{column}" for column in _COLUMNS.split(", "))
        sql = (
            f"SELECT {columns}, bm25(passages_fts, ?, ?, ?) AS rank "
            "FROM passages_fts JOIN passages AS p ON p.pk = passages_fts.rowid "
            "WHERE passages_fts MATCH ? ORDER BY rank LIMIT ?"
        )
        weights = (TITLE_WEIGHT, SECTION_WEIGHT, TEXT_WEIGHT)
        with self._connect() as db:
            rows = db.execute(sql, (*weights, match, limit)).fetchall()
        return [(_document(row), -row["rank"]) for row in rows]

    def list_documents(self, limit: int | None = None, offset: int = 0) -> list[Document]:
        """Stored passages, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM passages ORDER BY pk LIMIT ? OFFSET ?"
        with self._connect() as db:
            rows = db.execute(sql, (-1 if limit is None else limit, offset)).fetchall()
        return [_document(row) for row in rows]

    def get(self, doc_id: str) -> Document | None:
        """The passage with this id, if stored."""
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM passages WHERE id = ?", (doc_id,)).fetchone()
        return _document(row) if row else None

    def delete(self, doc_id: str) -> bool:
        """Remove one passage; False if there was none with this id."""
        with self._connect() as db:
            return db.execute("DELETE FROM passages WHERE id = ?", (doc_id,)).rowcount > 0

    def delete_url(self, url: str) -> int:
        """Remove every passage of the document at `url`; returns how many."""
        with self._connect() as db:
            return db.execute("DELETE FROM passages WHERE url = ?", (url,)).rowcount

    def count(self) -> int:
        """How many passages are stored."""
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM passages").fetchone()[0])


def _document(row: sqlite3.Row) -> Document:
    return Document(
        id=row["id"],
        url=row["url"],
        chunk=row["chunk"],
        title=row["title"],
        section=row["section"],
        text=row["text"],
        added_at=datetime.fromisoformat(row["added_at"]),
    )


class LocalSearch:
    """The `local` provider: the corpus searched off the event loop."""

    name = "local"

    def __init__(self, corpus: LocalCorpus) -> None:
        self.corpus = corpus

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        """The best `max_results` passages of the corpus for `query`."""
        return await asyncio.to_thread(self.corpus.search, query, max_results)
