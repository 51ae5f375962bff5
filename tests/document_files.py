"""Real files of every document format the corpus reads, written by the libraries that write them.

Each file holds a title, one section heading and one sentence under it (`Sample`), so a test can
check that the text arrives under its section.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docx
import fpdf
import pptx
from ebooklib import epub
from odf.opendocument import OpenDocumentText
from odf.text import H, P


@dataclass(frozen=True)
class Sample:
    """What a written file holds: its title, a section heading and the sentence under it."""

    title: str
    section: str
    text: str


def markdown(sample: Sample) -> bytes:
    """A Markdown file."""
    return f"# {sample.title}\n\n## {sample.section}\n\n{sample.text}\n".encode()


def html(sample: Sample) -> bytes:
    """An HTML page with a menu around its article."""
    return (
        f"<html><head><title>{sample.title}</title></head><body>"
        "<nav><ul><li><a href='/'>Home</a></li><li><a href='/s'>Subscribe now</a></li></ul></nav>"
        f"<main><article><h1>{sample.title}</h1><h2>{sample.section}</h2>"
        f"<p>{sample.text} {sample.text}</p></article></main></body></html>"
    ).encode()


def rst(sample: Sample) -> bytes:
    """A reStructuredText file (with an include that must not be followed)."""
    return (
        f"{sample.title}\n{'=' * len(sample.title)}\n\n"
        f"{sample.section}\n{'-' * len(sample.section)}\n\n{sample.text}\n\n"
        ".. include:: /etc/hostname\n"
    ).encode()


def docx_file(sample: Sample) -> bytes:
    """A Word document written by python-docx."""
    document = docx.Document()
    document.add_heading(sample.title, level=1)
    document.add_heading(sample.section, level=2)
    document.add_paragraph(sample.text)
    return _saved(document.save)


def pptx_file(sample: Sample) -> bytes:
    """A two-slide PowerPoint deck written by python-pptx: a title slide, then the section."""
    deck = pptx.Presentation()
    cover = deck.slides.add_slide(deck.slide_layouts[0])
    cover.shapes.title.text = sample.title
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = sample.section
    slide.placeholders[1].text = sample.text
    return _saved(deck.save)


def pdf(sample: Sample) -> bytes:
    """A PDF written by fpdf2, with its title in the metadata and the section in the outline."""
    document = fpdf.FPDF()
    document.set_title(sample.title)
    document.add_page()
    document.set_font("helvetica", size=12)
    document.start_section(sample.section)
    document.multi_cell(0, 10, sample.text)
    return bytes(document.output())


def epub_file(sample: Sample) -> bytes:
    """An EPUB book written by ebooklib: one chapter with the section in it."""
    book = epub.EpubBook()
    book.set_identifier("fawn-test-book")
    book.set_title(sample.title)
    book.set_language("en")
    chapter = epub.EpubHtml(title="Chapter one", file_name="one.xhtml", lang="en")
    chapter.content = f"<h1>Chapter one</h1><h2>{sample.section}</h2><p>{sample.text}</p>"
    book.add_item(chapter)
    book.toc = [chapter]
    book.spine = [chapter]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    return buffer.getvalue()


def odt(sample: Sample) -> bytes:
    """An OpenDocument text written by odfpy."""
    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text=sample.title))
    document.text.addElement(H(outlinelevel=2, text=sample.section))
    document.text.addElement(P(text=sample.text))
    return _saved(document.write)


def _saved(save: Callable[[io.BytesIO], object]) -> bytes:
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


# Each format with a fact of its own, so a search can tell them apart.
EVERY_FORMAT: dict[str, tuple[Callable[[Sample], bytes], Sample]] = {
    "notes.md": (markdown, Sample("Bee notes", "Pollination", "Honey bees pollinate almonds.")),
    "page.html": (
        html,
        Sample("Hanseatic League", "Trade routes", "The Hanse traded furs from Novgorod."),
    ),
    "guide.rst": (rst, Sample("S3 guide", "Multipart uploads", "Uploads split at 8 MiB.")),
    "report.docx": (docx_file, Sample("Glacier report", "Aletsch", "Aletsch is 23 km long.")),
    "deck.pptx": (pptx_file, Sample("Reef deck", "Coral bleaching", "Warm water bleaches coral.")),
    "paper.pdf": (pdf, Sample("Volcano paper", "Mauna Loa", "Mauna Loa rises 4169 metres.")),
    "book.epub": (epub_file, Sample("Desert book", "Atacama", "The Atacama gets 1 mm of rain.")),
    "tides.odt": (odt, Sample("Tide notes", "Bay of Fundy", "Fundy tides reach 16 metres.")),
}
PLAIN_TEXT = ("comets.txt", "Comets grow tails near the Sun.")


def write_every_format(folder: Path) -> dict[str, Sample]:
    """One file of every document format in `folder` (plain text too, without a section)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (write, sample) in EVERY_FORMAT.items():
        (folder / name).write_bytes(write(sample))
    (folder / PLAIN_TEXT[0]).write_text(PLAIN_TEXT[1])
    return {name: sample for name, (_, sample) in EVERY_FORMAT.items()}


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip archive of `files`: what a damaged Office file looks like to a type check."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
