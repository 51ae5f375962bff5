"""`fawn mcp list` and the doctor's MCP row, against real stdio MCP servers (no engine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.diagnostics import Status, check_mcp
from app.settings import load_settings

FAWN = Path(sys.executable).with_name("fawn")
KB = Path(__file__).resolve().parents[1] / "agents" / "mcp_kb.py"


def write_config(path: Path, *, with_missing: bool) -> Path:
    """A config file naming the test knowledge base (and a server that is not installed)."""
    text = (
        "[mcp.servers.kb]\n"
        f"command = {str(sys.executable)!r}\n"
        f"args = [{str(KB)!r}]\n"
        'tools = ["search"]\nsearch_tool = "search"\ntimeout_s = 20\n'
    )
    if with_missing:
        text += '[mcp.servers.gone]\ncommand = "fawn-no-such-server"\nsearch_tool = "search"\n'
    path.write_text(text)
    return path


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_config(tmp_path / "config.toml", with_missing=True)
    monkeypatch.setenv("FAWN_CONFIG", str(path))
    return path


def test_mcp_list_shows_each_server_whether_it_answers_and_its_tools(config_file: Path) -> None:
    result = subprocess.run(
        [str(FAWN), "mcp", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == 1, "a server that does not answer fails the command"
    kb_row = next(line for line in result.stdout.splitlines() if "│ kb" in line)
    assert "yes" in kb_row and "search (search)" in kb_row
    assert "delete_everything (not allowed)" in result.stdout
    assert "'fawn-no-such-server' is not installed" in result.stdout


def test_the_doctor_warns_about_a_server_that_does_not_answer(config_file: Path) -> None:
    check = check_mcp(load_settings())
    assert check.status is Status.WARN
    assert "gone" in check.detail and "not installed" in check.detail
    assert "fawn mcp list" in check.fix


def test_the_doctor_is_content_when_every_server_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAWN_CONFIG", str(write_config(tmp_path / "c.toml", with_missing=False)))
    check = check_mcp(load_settings())
    assert check.status is Status.OK and "kb (4 tools)" in check.detail
    monkeypatch.setenv("FAWN_CONFIG", str(tmp_path / "none.toml"))
    assert "no MCP servers configured" in check_mcp(load_settings()).detail


def test_research_with_an_unconfigured_mcp_provider_fails_before_the_engine(
    config_file: Path,
) -> None:
    result = subprocess.run(
        [str(FAWN), "research", "--auto-accept", "--provider", "mcp:wiki", "Who?"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "mcp:wiki cannot search: configure [mcp.servers.wiki]" in result.stderr
