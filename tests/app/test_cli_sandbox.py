"""`fawn sandbox exec` runs code in the real sandbox and mirrors its output and exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agents.tools.sandbox.figures import PNG_MAGIC

FAWN = Path(sys.executable).with_name("fawn")


def _fawn(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FAWN), "sandbox", "exec", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_exec_prints_the_codes_output_and_exits_zero() -> None:
    result = _fawn("print(6*7)")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"
    assert "Sandbox: exited with code 0" in result.stderr


def test_exec_reads_code_from_stdin_and_mirrors_its_exit_code() -> None:
    result = _fawn("-", stdin="import sys\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n")
    assert result.returncode == 3
    assert result.stdout == ""
    assert "to stderr" in result.stderr
    assert "exited with code 3" in result.stderr


def test_exec_runs_a_file(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("import os\nprint(os.getcwd())\n")
    result = _fawn("--file", str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/sandbox/work\n"


def test_exec_exits_nonzero_when_the_sandbox_kills_the_code() -> None:
    result = _fawn(
        "import time\nprint('waiting', flush=True)\ntime.sleep(60)", "--wall-seconds", "1"
    )
    assert result.returncode == 124
    assert result.stdout == "waiting\n"
    assert "killed: wall time limit reached" in result.stderr


def test_exec_saves_figures_to_the_figures_dir(tmp_path: Path) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.savefig('line.png')\n"
    figures = tmp_path / "figures"
    result = _fawn(code, "--figures-dir", str(figures), "--wall-seconds", "60")
    assert result.returncode == 0, result.stderr
    saved = figures / "line.png"
    assert saved.read_bytes().startswith(PNG_MAGIC)
    assert "Figure line.png" in result.stderr
    assert str(saved) in result.stderr


def test_exec_without_bubblewrap_is_a_one_line_error(tmp_path: Path) -> None:
    result = _fawn("print(1)", "--bwrap", str(tmp_path / "missing-bwrap"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: bubblewrap")
    assert "apt-get install bubblewrap" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_exec_needs_exactly_one_source_of_code(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text("print(1)\n")
    for args in ((), ("print(1)", "--file", str(script))):
        result = _fawn(*args)
        assert result.returncode == 2
        assert result.stderr.startswith("Error: Give the code")


def test_exec_rejects_invalid_limits() -> None:
    result = _fawn("print(1)", "--memory-mb", "1")
    assert result.returncode == 2
    assert "Invalid sandbox limits (memory_mb" in result.stderr
