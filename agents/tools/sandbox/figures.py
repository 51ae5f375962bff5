"""Collect the PNG files sandboxed code left in its work dir, without trusting any of them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agents.tools.sandbox.models import Figure, SandboxLimits

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def collect_figures(work: Path, limits: SandboxLimits) -> tuple[list[Figure], list[str]]:
    """PNG files in `work` (by name), and a note for each one skipped with the reason."""
    figures: list[Figure] = []
    skipped: list[str] = []
    for name in _png_names(work):
        if len(figures) >= limits.max_figures:
            skipped.append(f"{name}: more than {limits.max_figures} figures")
            continue
        png, problem = _read_png(work / name, limits.max_figure_bytes)
        if png is None:
            skipped.append(f"{name}: {problem}")
        else:
            figures.append(Figure(name=name, png=png))
    return figures, skipped


def _png_names(work: Path) -> list[str]:
    """Relative names of *.png regular files; hidden dirs (caches) and symlinks are left out."""
    names = []
    for parent, dirs, files in os.walk(work):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = Path(parent, name)
            if name.lower().endswith(".png") and stat.S_ISREG(path.lstat().st_mode):
                names.append(str(path.relative_to(work)))
    return sorted(names)


def _read_png(path: Path, max_bytes: int) -> tuple[bytes | None, str]:
    # O_NOFOLLOW: a symlink planted in the work dir must never make Fawn read a host file.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, "not a regular file"
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        return None, f"larger than {max_bytes:,} bytes"
    if not data.startswith(PNG_MAGIC):
        return None, "not a PNG file"
    return data, ""
