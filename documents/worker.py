"""The document worker: checks and renders one uploaded document in a process of its own, under limits.

``documents.library`` runs it as a subprocess, never in the server process, because the input is untrusted:

    python -m documents.worker render <original.pdf> <document folder> --max-pages 300
    python -m documents.worker convert <source.pptx> <original.pdf> --office /usr/bin/soffice

Before it touches the input the worker limits itself (``core.sandbox.apply_limits``): address space
(``--memory-mb``, 1 GiB), CPU seconds for the whole run (``--cpu-seconds``), the size of any file it writes,
no core dumps; and, for validation, a CPU-time budget of its own (``--validation-cpu-seconds``, a profiling
timer whose signal ends the process). CPU time, not wall time: a busy machine makes a document slower, never
refused. The parent keeps generous wall-clock deadlines only as a safety net and kills the whole process
group past them. A page that would need more memory than the limit makes PDFium fail or the process die;
either way the document is refused, not the server.

``render`` first validates, prints ``{"validated": true, "pages": N, "kind": …}``, then renders each page
with PDFium to JPEG at 1280 and 240 px wide into ``pages/`` and ``thumbs/``, printing ``{"rendered": n,
"pages": N}`` after each, and ends with ``{"done": true, "pages": N}``. A refusal is one line ``{"error":
"<code>"}`` (a :class:`DocumentError` code) and exit status 2. Only these lines go to standard output: the
real stdout is kept for them and file descriptor 1 is pointed at stderr, so nothing a library prints can be
mistaken for progress.

Validation: PDFium decides what opens (not a PDF, password protected, damaged, too many pages, absurd page
sizes are what it reports). pypdf then adds what PDFium would only find out by spending the limits: content
streams that inflate past pypdf's limits (decompression bombs) and embedded images of absurd declared size.
pypdf is a second opinion only where it can read the file: a file it cannot parse (or decrypt) but PDFium
opens is judged by PDFium and the limits alone.

Why a document is refused is in ``documents.errors``; ``documents.library`` re-exports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.sandbox import apply_limits
from documents.errors import (
    BadPageSize,
    ConversionFailed,
    DocumentDamaged,
    DocumentError,
    DocumentUnprocessable,
    NotAPdf,
    PasswordProtected,
    TooManyPages,
)
from documents.storage import DISPLAY_WIDTH, PAGES, THUMB_WIDTH, THUMBS

if TYPE_CHECKING:
    import pypdfium2
    from PIL import Image


# --- limits -----------------------------------------------------------------------------------------------

MAX_PAGE_SIDE = 14_400.0  # pt: the largest page PDF itself allows (200 inches)
MIN_PAGE_SIDE = 1.0  # pt
MAX_ASPECT = 20.0  # a 1:20 page is already a 1280 x 25,600 px image
MAX_IMAGE_PIXELS = 100_000_000  # an embedded image PDFium would have to decode (400 MB as RGBA)
MAX_XOBJECTS = 20_000  # forms and images looked at while validating
MAX_FORM_DEPTH = 8
MAX_FILE_WRITTEN = 512 * 1024 * 1024  # RLIMIT_FSIZE: no page image or converted PDF is near this
JPEG_QUALITY = 80
OFFICE_EXTENSIONS = frozenset({".pptx", ".docx", ".xlsx", ".ppt", ".doc", ".xls", ".odp", ".odt", ".ods"})


def check_page_size(width: float, height: float) -> None:
    w, h = abs(width), abs(height)
    if not (MIN_PAGE_SIDE <= w <= MAX_PAGE_SIDE and MIN_PAGE_SIDE <= h <= MAX_PAGE_SIDE):
        raise BadPageSize()
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise BadPageSize()


# --- validation -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    pages: int
    kind: str  # "slides" (landscape first page) or "vertical" (portrait)


def looks_like_pdf(path: Path) -> bool:
    with path.open("rb") as f:
        return b"%PDF-" in f.read(1024)


def validate(path: Path, max_pages: int) -> tuple[pypdfium2.PdfDocument, Checked]:
    """Refuse what cannot or should not be rendered; return the open PDFium document and what it is."""
    if not looks_like_pdf(path):
        raise NotAPdf()
    pdf, checked = _check_with_pdfium(path, max_pages)
    try:
        _scan_with_pypdf(path)
    except BaseException:
        pdf.close()
        raise
    return pdf, checked


def _scan_with_pypdf(path: Path) -> None:
    """Inflate the content streams (pypdf stops a bomb at its limits) and look at the declared sizes of
    images; skipped where pypdf cannot read or decrypt what PDFium opened."""
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import LimitReachedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            return  # PDFium opened it: what is encrypted (an attachment, say) is not shown anyway
        pages = list(reader.pages)
    except Exception:  # pypdf cannot parse what PDFium repaired: PDFium and the limits decide
        return
    seen: set[object] = set()
    try:
        for page in pages:
            contents = page.get_contents()
            if contents is not None:
                contents.get_data()  # inflating is where a bomb goes off; pypdf stops at its limits
            _check_resources(page.get("/Resources"), seen, 0)
    except DocumentError:
        raise
    except (LimitReachedError, MemoryError) as exc:  # a stream that inflates beyond pypdf's limits
        raise DocumentUnprocessable() from exc
    except Exception:  # pypdf fails where PDFium did not: PDFium and the limits decide
        return


def _check_resources(resources: Any, seen: set[object], depth: int) -> None:
    """Form XObjects are content too (inflate them); images must not be absurdly large."""
    if resources is None:
        return
    if depth > MAX_FORM_DEPTH:
        raise DocumentUnprocessable()
    xobjects = resources.get_object().get("/XObject")
    if xobjects is None:
        return
    for reference in xobjects.get_object().values():
        key = getattr(reference, "idnum", None), getattr(reference, "generation", None)
        if key[0] is not None:
            if key in seen:
                continue
            seen.add(key)
        if len(seen) > MAX_XOBJECTS:
            raise DocumentUnprocessable()
        xobject = reference.get_object()
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            if int(xobject.get("/Width", 0)) * int(xobject.get("/Height", 0)) > MAX_IMAGE_PIXELS:
                raise DocumentUnprocessable()
        elif subtype == "/Form":
            xobject.get_data()
            _check_resources(xobject.get("/Resources"), seen, depth + 1)


def _check_with_pdfium(path: Path, max_pages: int) -> tuple[pypdfium2.PdfDocument, Checked]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise PasswordProtected() from exc
        raise DocumentDamaged() from exc
    try:
        count = len(pdf)
        if count == 0:
            raise DocumentDamaged()
        if count > max_pages:
            raise TooManyPages(limit=max_pages)
        sizes = [pdf.get_page_size(index) for index in range(count)]  # with /Rotate applied
    except pdfium.PdfiumError as exc:
        raise DocumentDamaged() from exc
    for width, height in sizes:
        check_page_size(width, height)
    first_width, first_height = sizes[0]
    return pdf, Checked(count, "slides" if first_width >= first_height else "vertical")


# --- rendering --------------------------------------------------------------------------------------------


def render_page(pdf: pypdfium2.PdfDocument, index: int, width: int = DISPLAY_WIDTH) -> Image.Image:
    """Page ``index`` as an RGB image exactly ``width`` px wide."""
    from PIL import Image

    page = pdf[index]
    try:
        page_width, page_height = page.get_size()
        image: Image.Image = page.render(scale=width / page_width, may_draw_forms=False).to_pil()
    finally:
        page.close()
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.width != width:  # PDFium rounds the bitmap size; the width is part of the contract
        image = image.resize(
            (width, max(1, round(page_height * width / page_width))), Image.Resampling.BILINEAR
        )
    return image


def thumbnail(image: Image.Image, width: int = THUMB_WIDTH) -> Image.Image:
    from PIL import Image

    height = max(1, round(image.height * width / image.width))
    # Box-averaging by a whole factor first (1280 -> 256) then resampling: ~2 ms, against ~6 ms for a
    # resample with Pillow's own reducing_gap, and independent of the page's content (unlike rendering again).
    factor = max(1, image.width // width)
    return image.reduce(factor).resize((width, height), Image.Resampling.BILINEAR)


def save_jpeg(image: Image.Image, path: Path) -> None:
    image.save(path, "JPEG", quality=JPEG_QUALITY)


def validation_budget(cpu_seconds: float) -> None:
    """End this process (SIGPROF, whose default action is to terminate) once it has used ``cpu_seconds``
    of CPU time from now; 0 disarms. Finer than RLIMIT_CPU, which counts whole seconds."""
    signal.setitimer(signal.ITIMER_PROF, max(0.0, cpu_seconds))


def render_document(source: Path, folder: Path, max_pages: int, report: Report) -> None:
    import pypdfium2 as pdfium

    pdf, checked = validate(source, max_pages)
    validation_budget(0)  # validated: the whole run's CPU limit (RLIMIT_CPU) goes on
    report.send(validated=True, pages=checked.pages, kind=checked.kind)
    pages, thumbs = folder / PAGES, folder / THUMBS
    pages.mkdir(parents=True, exist_ok=True)
    thumbs.mkdir(parents=True, exist_ok=True)
    try:
        for index in range(checked.pages):
            try:
                image = render_page(pdf, index)
            except pdfium.PdfiumError as exc:
                raise DocumentDamaged() from exc
            save_jpeg(image, pages / f"{index + 1}.jpg")
            save_jpeg(thumbnail(image), thumbs / f"{index + 1}.jpg")
            report.send(rendered=index + 1, pages=checked.pages)
    finally:
        pdf.close()
    report.send(done=True, pages=checked.pages, kind=checked.kind)


# --- office files -----------------------------------------------------------------------------------------


def convert_office(source: Path, destination: Path, office: str, timeout: float, report: Report) -> None:
    """LibreOffice, headless, with a throwaway profile; its output becomes ``destination``.

    It runs as this process's child, so it inherits the limits, and the parent's timeout kills the group.
    """
    if source.suffix.lower() not in OFFICE_EXTENSIONS:
        raise NotAPdf()
    with tempfile.TemporaryDirectory(prefix="convert-", dir=destination.parent) as work:
        profile = Path(work) / "profile"
        out = Path(work) / "out"
        out.mkdir()
        command = [
            office,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(source),
        ]
        try:
            subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr,
                stderr=sys.stderr,
                timeout=timeout,
                check=True,
                env={**os.environ, "HOME": work},
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise ConversionFailed() from exc
        produced = out / f"{source.stem}.pdf"
        if not produced.is_file() or not looks_like_pdf(produced):
            raise ConversionFailed()
        shutil.move(produced, destination)
    report.send(converted=True)


# --- the process ------------------------------------------------------------------------------------------


class Report:
    """The protocol channel: the real standard output, one JSON object per line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    @classmethod
    def take_stdout(cls) -> Report:
        channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)  # whatever else writes to fd 1 (a C library, print) goes to stderr
        sys.stdout = sys.stderr
        return cls(channel)

    def send(self, **message: object) -> None:
        self.stream.write(json.dumps(message) + "\n")
        self.stream.flush()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m documents.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--cpu-seconds", type=int, default=120)
    parser.add_argument("--validation-cpu-seconds", type=float, default=5.0)
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="validate a PDF and render its pages")
    render.add_argument("source", type=Path)
    render.add_argument("folder", type=Path, help="the document's folder (pages/ and thumbs/ go here)")
    render.add_argument("--max-pages", type=int, default=300)
    convert = commands.add_parser("convert", help="convert an office file to PDF with LibreOffice")
    convert.add_argument("source", type=Path)
    convert.add_argument("destination", type=Path)
    convert.add_argument("--office", required=True, help="the soffice / libreoffice program")
    convert.add_argument("--timeout", type=float, default=120)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    apply_limits(args.memory_mb, args.cpu_seconds, MAX_FILE_WRITTEN)
    if args.command == "render":
        validation_budget(args.validation_cpu_seconds)  # counts the imports too: starting is part of it
    report = Report.take_stdout()
    try:
        if args.command == "render":
            render_document(args.source, args.folder, args.max_pages, report)
        else:
            convert_office(args.source, args.destination, args.office, args.timeout, report)
    except DocumentError as exc:
        report.send(error=exc.code)
        return 2
    except MemoryError:
        report.send(error=DocumentUnprocessable.code)
        return 3
    except Exception:  # a bug or a library failing on odd input: refuse the document, keep the reason
        traceback.print_exc()
        report.send(error=DocumentUnprocessable.code)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
