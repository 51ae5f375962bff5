"""`fawn corpus add/search/list/remove` through the real command, on a temporary data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agents.tools.corpus import LocalCorpus
from agents.tools.search import corpus_path
from tests.document_files import write_every_format

FAWN = Path(sys.executable).with_name("fawn")


def fawn_corpus(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `fawn corpus ...` with the test's environment (its FAWN_DATA_DIR) and a wide terminal."""
    return subprocess.run(
        [str(FAWN), "corpus", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


def notes_folder(root: Path) -> Path:
    folder = root / "notes"
    folder.mkdir()
    (folder / "bees.md").write_text("# Honey bees\n\nHoney bees pollinate almond orchards.\n")
    (folder / "rivers.txt").write_text("The Danube flows through ten countries.\n")
    return folder


def test_add_search_list_remove_round_trip(
    tmp_path: Path, isolated_env: Path, hotpotqa_path: Path
) -> None:
    folder = notes_folder(tmp_path)
    added = fawn_corpus("add", str(folder), str(hotpotqa_path))
    assert added.returncode == 0, added.stderr
    assert f"{folder}: 2 added, 0 updated, 0 unchanged passages" in added.stdout
    corpus = LocalCorpus(corpus_path(isolated_env))
    total = corpus.count()
    assert total > 2
    assert f"holds {total} passages" in added.stdout

    again = fawn_corpus("add", str(folder))
    assert "0 added, 0 updated, 2 unchanged passages" in again.stdout
    assert corpus.count() == total

    found = fawn_corpus("search", "Which orchards do honey bees pollinate?", "-k", "3")
    assert found.returncode == 0, found.stderr
    first_row = next(line for line in found.stdout.splitlines() if "│ 1 " in line)
    assert "Honey bees" in first_row
    assert (folder / "bees.md").resolve().as_uri() in found.stdout

    bees = next(d for d in corpus.list_documents() if d.title == "Honey bees")
    listed = fawn_corpus("list", "--limit", "5")
    assert bees.id in listed.stdout
    assert f"5 of {total} passages shown." in listed.stdout

    removed = fawn_corpus("remove", bees.id)
    assert removed.returncode == 0, removed.stderr
    assert f"Removed 1 passage of {bees.id}" in removed.stdout
    assert corpus.get(bees.id) is None
    assert "Honey bees" not in fawn_corpus("search", "honey bees almond").stdout


def test_a_folder_of_every_format_is_added_and_odd_files_are_reported_not_fatal(
    tmp_path: Path, isolated_env: Path
) -> None:
    folder = tmp_path / "guides"
    samples = write_every_format(folder)
    (folder / "index.json").write_text('{"topics": ["s3"]}')
    (folder / "logo.bin").write_bytes(bytes(range(256)))
    result = fawn_corpus("add", str(folder))
    assert result.returncode == 0, result.stderr
    assert f"passages from {len(samples) + 1} files" in result.stdout
    skipped = [line.strip() for line in result.stdout.splitlines() if "skipped" in line]
    assert skipped == [
        f"skipped (not_records): {folder / 'index.json'} is not records: record 1 has no `text`; "
        'records need {"title": ..., "url": ..., "text": ...} (title and url optional).',
        f"skipped (unknown_type): {folder / 'logo.bin'} is of unknown type .bin; supported files "
        "are .docx, .epub, .htm, .html, .json, .jsonl, .markdown, .md, .odt, .pdf, .pptx, .rest, "
        ".rst, .text, .txt.",
    ]
    corpus = LocalCorpus(corpus_path(isolated_env))
    titles = {(d.title, d.section) for d in corpus.list_documents()}
    for sample in samples.values():
        assert any(t == sample.title and s.endswith(sample.section) for t, s in titles), sample
    found = fawn_corpus("search", "How long is the Aletsch glacier?", "-k", "1")
    assert "Glacier report › Aletsch" in found.stdout


def test_adding_only_files_that_are_skipped_fails_after_reporting_them(
    tmp_path: Path, isolated_env: Path
) -> None:
    (tmp_path / "slides.key").write_bytes(b"PK\x03\x04")
    result = fawn_corpus("add", str(tmp_path / "slides.key"))
    assert result.returncode == 2
    assert "skipped (unknown_type)" in result.stdout
    assert result.stderr.startswith("Error: Nothing was added: every file was skipped")
    assert LocalCorpus(corpus_path(isolated_env)).count() == 0


def test_remove_by_url_removes_the_whole_document(tmp_path: Path, isolated_env: Path) -> None:
    file = tmp_path / "long.txt"
    file.write_text(" ".join(f"Sentence {n} about deserts and dunes." for n in range(300)))
    assert fawn_corpus("add", str(file)).returncode == 0
    count = LocalCorpus(corpus_path(isolated_env)).count()
    removed = fawn_corpus("remove", file.resolve().as_uri())
    assert f"Removed {count} passages" in removed.stdout
    assert LocalCorpus(corpus_path(isolated_env)).count() == 0


def test_errors_are_one_clean_line_with_exit_code_2(tmp_path: Path) -> None:
    assert fawn_corpus("add", str(notes_folder(tmp_path))).returncode == 0
    for args, message in [
        (("search", " ?! "), "query is empty"),
        (("remove", "0000000000000000"), "Not in the corpus: 0000000000000000"),
        (("add", str(tmp_path / "missing.md")), "does not exist"),
    ]:
        result = fawn_corpus(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("Error: ")
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_searching_before_adding_says_how_to_add(isolated_env: Path) -> None:
    result = fawn_corpus("search", "anything")
    assert result.returncode == 2
    assert "fawn corpus add PATH" in result.stderr
