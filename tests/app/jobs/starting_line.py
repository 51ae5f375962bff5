"""Real processes that start an action at the same moment, to test what two processes race for.

Each child runs a Python script that prints "ready" once its imports are done and then waits for
a line on stdin; `go` sends that line to all of them at once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
# What a child script does between its imports and its action.
WAIT_FOR_GO = 'print("ready", flush=True)\nimport sys\nsys.stdin.readline()\n'


def at_the_line(script: str, env: dict[str, str], count: int = 2) -> list[subprocess.Popen[str]]:
    """`count` processes running `script`, each ready and waiting for `go`."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return children


def go(children: list[subprocess.Popen[str]]) -> None:
    """Let every waiting child run its action."""
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


def finish(children: list[subprocess.Popen[str]], timeout_s: float = 60) -> list[str]:
    """What each child printed after "ready"; fails with its stderr if one did not exit 0."""
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=timeout_s)
        assert child.returncode == 0, err
        outputs.append(out)
    return outputs
