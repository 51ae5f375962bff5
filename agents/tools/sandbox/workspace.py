"""One run's files on the host: a fresh temporary dir with the code and an empty work dir."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """One run's host-side files: the code, the work dir, and the sandbox venv's config."""

    root: Path
    work: Path
    script: Path
    venv_config: Path


def create_workspace(code: str, python_home: Path, uid: int | None) -> Workspace:
    """A fresh temporary dir holding the code and an empty work dir owned by the sandbox user."""
    root = Path(tempfile.mkdtemp(prefix="fawn-sandbox-"))
    space = Workspace(root, root / "work", root / "main.py", root / "pyvenv.cfg")
    try:
        space.work.mkdir()
        if uid is not None:
            os.chown(space.work, uid, uid)
        space.script.write_text(code, encoding="utf-8")
        space.venv_config.write_text(
            f"home = {python_home}\ninclude-system-site-packages = false\n"
        )
    except BaseException:
        remove_workspace(space)
        raise
    return space


def remove_workspace(space: Workspace) -> None:
    """Delete a workspace, even where the sandboxed code took away its own write permission."""
    for parent, dirs, _ in os.walk(space.root):
        for name in dirs:
            path = Path(parent, name)
            if not path.is_symlink():
                with suppress(OSError):
                    path.chmod(stat.S_IRWXU)
    shutil.rmtree(space.root, ignore_errors=True)


@contextmanager
def workspace(code: str, python_home: Path, uid: int | None) -> Iterator[Workspace]:
    """`create_workspace` for the length of a with-block."""
    space = create_workspace(code, python_home, uid)
    try:
        yield space
    finally:
        remove_workspace(space)
