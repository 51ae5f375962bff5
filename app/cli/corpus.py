"""`fawn corpus`: build and search the local corpus that offline research reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agents.text import truncate
from agents.tools.corpus import AddResult, LocalCorpus
from agents.tools.ingest import SUPPORTED_SUFFIXES, ReadFile, SkippedFile, read_path
from agents.tools.search import corpus_path
from app.cli.errors import fail
from app.settings import load_settings

SNIPPET_CHARS = 160
DEFAULT_LIST_LIMIT = 50

app = typer.Typer(
    help="The local corpus (SQLite full-text search) that offline research searches.",
    no_args_is_help=True,
)
_stdout = Console(highlight=False, soft_wrap=True)


def _open() -> LocalCorpus:
    return LocalCorpus(corpus_path(load_settings().data_dir))


@app.command("add")
def add(
    paths: Annotated[
        list[Path],
        typer.Argument(help=f"Files or folders ({', '.join(sorted(SUPPORTED_SUFFIXES))})."),
    ],
) -> None:
    """Add files and folders to the corpus; adding them again only applies their changes. A file
    that cannot be added is skipped, and the report says why.

    Example: fawn corpus add notes/ paper.pdf guide.docx hotpotqa-dev.json
    """
    corpus = _open()
    read_any = skipped_any = False
    for path in paths:
        results = list(_add_path(corpus, path))
        read = [r for r in results if isinstance(r, AddResult)]
        skipped = [r for r in results if isinstance(r, SkippedFile)]
        read_any, skipped_any = read_any or bool(read), skipped_any or bool(skipped)
        _stdout.print(f"{path}: {_summary(read)}")
        for file in skipped:
            _stdout.print(f"  skipped ({file.reason}): {file}", markup=False)
    _stdout.print(f"The corpus at {corpus.path} holds {_passages(corpus.count())}.")
    if skipped_any and not read_any:
        raise fail("Nothing was added: every file was skipped (see above).")


def _add_path(corpus: LocalCorpus, path: Path) -> Iterator[AddResult | SkippedFile]:
    """What each file under `path` added, or why it was skipped; one file at a time, so a large
    folder is never held in memory whole."""
    for result in read_path(path):
        yield corpus.add(result.documents) if isinstance(result, ReadFile) else result


def _summary(read: list[AddResult]) -> str:
    counts = {
        "added": sum(r.added for r in read),
        "updated": sum(r.updated for r in read),
        "unchanged": sum(r.unchanged for r in read),
        "removed": sum(r.removed for r in read),
    }
    parts = [f"{n} {what}" for what, n in counts.items() if n or what != "removed"]
    files = f"{len(read)} file{'' if len(read) == 1 else 's'}"
    return ", ".join(parts) + f" passages from {files}"


def _passages(count: int) -> str:
    return f"{count} passage{'' if count == 1 else 's'}"


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    k: Annotated[int, typer.Option("-k", "--max-results", min=1, help="How many hits.")] = 5,
) -> None:
    """Show the passages that best match a query, ranked by bm25.

    Example: fawn corpus search "Who founded Arthur's Magazine?" -k 3
    """
    hits = _open().search(query, k)
    if not hits:
        _stdout.print("No passage matches; try other words.")
        return
    table = Table("#", "score", "title")
    table.add_column("url", overflow="fold")
    table.add_column("passage")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(
            str(rank), f"{hit.score:.2f}", hit.title, hit.url, truncate(hit.passage, SNIPPET_CHARS)
        )
    _stdout.print(table)


@app.command("list")
def list_passages(
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = (
        DEFAULT_LIST_LIMIT
    ),
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
) -> None:
    """List the stored passages with their ids, oldest first.

    Example: fawn corpus list --limit 20
    """
    corpus = _open()
    total = corpus.count()
    table = Table()
    table.add_column("id", no_wrap=True, min_width=16)
    table.add_column("title")
    table.add_column("chunk")
    table.add_column("url", overflow="fold")
    table.add_column("added")
    for doc in corpus.list_documents(limit, offset):
        added = doc.added_at.strftime("%Y-%m-%d %H:%M") if doc.added_at else ""
        table.add_row(doc.id, doc.title, str(doc.chunk), doc.url, added)
    _stdout.print(table)
    shown = min(limit, max(total - offset, 0))
    _stdout.print(f"{shown} of {_passages(total)} shown.")


@app.command("remove")
def remove(
    ids: Annotated[list[str], typer.Argument(help="Passage ids (from `list`) or document URLs.")],
) -> None:
    """Remove passages by id, or every passage of a document by its URL.

    Example: fawn corpus remove 3f2a9c1e0b7d4a55
    """
    corpus = _open()
    missing = []
    for item in ids:
        removed = corpus.delete_url(item) if "://" in item else int(corpus.delete(item))
        if removed:
            _stdout.print(f"Removed {_passages(removed)} of {item}.")
        else:
            missing.append(item)
    if missing:
        raise fail(f"Not in the corpus: {', '.join(missing)}; see `fawn corpus list` for ids.")
