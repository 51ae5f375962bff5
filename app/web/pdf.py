"""PDF export: print a self-contained report page with headless Chromium, when one is installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from pathlib import Path

from serving.errors import FawnError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
PRINT_TIMEOUT_S = 60.0
_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-pdf-header-footer",
)


class PdfError(FawnError):
    """Chromium could not print the report."""


def find_chromium() -> Path | None:
    """The first Chromium on PATH, or None when PDF export is unavailable."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


async def print_pdf(html: str, chromium: Path, timeout_s: float = PRINT_TIMEOUT_S) -> bytes:
    """`html` (a page that loads nothing from outside) printed to PDF by `chromium`."""
    with tempfile.TemporaryDirectory(prefix="fawn-pdf-") as scratch:
        folder = Path(scratch)
        page, pdf = folder / "report.html", folder / "report.pdf"
        page.write_text(html, encoding="utf-8")
        flags = [*_FLAGS, f"--user-data-dir={folder / 'profile'}", f"--print-to-pdf={pdf}"]
        if os.geteuid() == 0:  # Chromium refuses to start as root with its sandbox on
            flags.append("--no-sandbox")
        process = await asyncio.create_subprocess_exec(
            str(chromium),
            *flags,
            page.as_uri(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its renderer and GPU helpers die with it on a timeout
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError as exc:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise PdfError(
                f"Chromium did not print the report within {timeout_s:.0f} s; "
                "download the HTML and print it from a browser instead."
            ) from exc
        if process.returncode != 0 or not pdf.is_file():
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise PdfError(
                f"Chromium ({chromium}) failed to print the report (exit {process.returncode}: "
                f"{tail[0]}); download the HTML and print it from a browser instead."
            )
        return pdf.read_bytes()
