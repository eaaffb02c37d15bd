"""Documents: what preparing a document's pages costs, page by page.

Run from the repository root: ``.venv/bin/python -m bench.documents`` (``--pages`` to change the document).
It writes a text PDF (``tests.harness.pdfs.text_pdf``, 100 landscape pages by default) and renders every
page at display width (1280 px) with the worker's own functions (``documents.worker.render_page`` and
``save_jpeg``), in this process so each step can be timed, then runs the real worker subprocess on the same
file. It prints ``name: value`` lines:

- ``render_ms_per_page_p50/p99``: render + JPEG encode + write, what the worker does for a display page;
- baselines from the same run: ``render_only_ms_per_page_p50/p99`` (PDFium bitmap to a PIL image, no
  encoding), ``jpeg_encode_ms_p50`` and ``png_encode_ms_p50`` (the same images), their ratio, and the
  thumbnail's cost;
- ``worker_*``: the whole document through ``python -m documents.worker`` (process start, validation, both
  widths), as an upload costs it;
- ``render_target_met`` and ``render_vs_render_only_ratio_p50``;
- ``page_turn_p50/p99_ms``: a page turned by the host until the guest's socket has the new page, through a
  real room (``bench.page_turn``), beside ``echo_p50/p99_ms``, a bare WebSocket echo in the same run; then
  ``page_turn_target_met`` and, last, ``page_turn_vs_echo_ratio_p99``.

Targets: ``render_ms_per_page_p99`` <= 50 ms, ``page_turn_p99_ms`` < 50 ms. Finishes well within two minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a file: import from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator

from bench.page_turn import page_turn_bench
from documents.worker import render_page, save_jpeg, thumbnail
from tests.harness.pdfs import A4_LANDSCAPE, text_pdf

RENDER_TARGET_P99_MS = 50.0
PAGE_TURN_TARGET_P99_MS = 50.0


def percentile_ms(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] * 1000 if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def line(name: str, value: float | str) -> str:
    if isinstance(value, str):
        return f"{name}: {value}"
    return f"{name}: {value:.0f}" if abs(value) >= 100 else f"{name}: {value:.2f}"


def render_bench(pages: int = 100) -> Iterator[str]:
    """Yield the render figures as ``name: value`` lines (another bench's lines may follow them)."""
    import pypdfium2 as pdfium

    with tempfile.TemporaryDirectory(prefix="bench-documents-") as work:
        folder = Path(work)
        source = folder / "original.pdf"
        source.write_bytes(text_pdf(pages=pages, size=A4_LANDSCAPE))
        out = folder / "pages"
        out.mkdir()
        pdf = pdfium.PdfDocument(str(source))
        try:
            save_jpeg(render_page(pdf, 0), out / "warm-up.jpg")  # load fonts and code paths once
            render_only, with_jpeg, jpeg, png, thumb = [], [], [], [], []
            for index in range(len(pdf)):
                began = time.perf_counter()
                image = render_page(pdf, index)
                rendered = time.perf_counter()
                save_jpeg(image, out / f"{index + 1}.jpg")
                encoded = time.perf_counter()
                render_only.append(rendered - began)
                with_jpeg.append(encoded - began)
                jpeg.append(encoded - rendered)
                began = time.perf_counter()
                image.save(io.BytesIO(), "PNG")
                png.append(time.perf_counter() - began)
                began = time.perf_counter()
                save_jpeg(thumbnail(image), out / f"thumb-{index + 1}.jpg")
                thumb.append(time.perf_counter() - began)
            width = image.width
        finally:
            pdf.close()
        jpeg_bytes = statistics.median((out / f"{n}.jpg").stat().st_size for n in range(1, pages + 1))

        size = f"{A4_LANDSCAPE[0]:.0f}x{A4_LANDSCAPE[1]:.0f} pt"
        yield f"# {pages} pages of text, {size}, rendered {width} px wide"
        yield line("render_ms_per_page_p50", percentile_ms(with_jpeg, 50))
        yield line("render_ms_per_page_p99", percentile_ms(with_jpeg, 99))
        yield line("render_only_ms_per_page_p50", percentile_ms(render_only, 50))
        yield line("render_only_ms_per_page_p99", percentile_ms(render_only, 99))
        yield line("jpeg_encode_ms_p50", percentile_ms(jpeg, 50))
        yield line("png_encode_ms_p50", percentile_ms(png, 50))
        yield line("png_vs_jpeg_encode_ratio_p50", statistics.median(png) / statistics.median(jpeg))
        yield line("thumb_ms_per_page_p50", percentile_ms(thumb, 50))
        yield line("jpeg_kb_per_page_p50", jpeg_bytes / 1024)

        # The real thing: the worker subprocess, limits and all, on the same file.
        began = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "documents.worker", "render", str(source), str(folder / "worker")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        seconds = time.perf_counter() - began
        last = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
        yield line("worker_ok", "yes" if result.returncode == 0 and last.get("done") else "no")
        yield line("worker_seconds", seconds)
        yield line("worker_ms_per_page", seconds * 1000 / pages)

        p99 = percentile_ms(with_jpeg, 99)
        yield f"# target: render_ms_per_page_p99 <= {RENDER_TARGET_P99_MS:.0f}"
        yield line("render_target_met", "yes" if p99 <= RENDER_TARGET_P99_MS else "no")
        yield line(
            "render_vs_render_only_ratio_p50", statistics.median(with_jpeg) / statistics.median(render_only)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=100, help="pages in the generated PDF (default 100)")
    parser.add_argument("--turns", type=int, default=500, help="page turns to time (default 500)")
    args = parser.parse_args(argv)
    for text in render_bench(args.pages):
        print(text, flush=True)
    turns = asyncio.run(page_turn_bench(args.turns))
    for name, value in turns.items():
        print(line(name, value), flush=True)
    print(f"# target: page_turn_p99_ms < {PAGE_TURN_TARGET_P99_MS:.0f}")
    print(
        line("page_turn_target_met", "yes" if turns["page_turn_p99_ms"] < PAGE_TURN_TARGET_P99_MS else "no")
    )
    print(line("page_turn_vs_echo_ratio_p99", turns["page_turn_p99_ms"] / turns["echo_p99_ms"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
