"""Where a document's files live, and uploads that appear there only once they are complete.

Layout under ``<data_dir>/documents/``::

    <org_id>/<doc_id>/original.pdf      the uploaded PDF (or the PDF LibreOffice made from an office file)
    <org_id>/<doc_id>/source.<ext>      an uploaded office file, until it has been converted
    <org_id>/<doc_id>/pages/<n>.jpg     page n, 1280 px wide, shown in meetings
    <org_id>/<doc_id>/thumbs/<n>.jpg    page n, 240 px wide, for the library list
    tmp/upload-*.part                   uploads being received

An upload is streamed to a file in ``tmp/`` (the same file system, so the final move is an atomic rename) and
moved into its document's folder only once every byte has arrived. A failed, oversized or interrupted upload
removes its temporary file; a rejected document has its whole folder removed. Nothing here touches the
database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.uploads import Upload

DISPLAY_WIDTH = 1280  # px: the page as shown in a meeting
THUMB_WIDTH = 240  # px: the library's thumbnails
ORIGINAL = "original.pdf"
SOURCE = "source"  # + the office file's extension, e.g. source.pptx
PAGES = "pages"
THUMBS = "thumbs"


class DocumentStorage:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "documents"
        self.tmp = self.root / "tmp"

    def new_upload(self) -> Upload:
        return Upload(self.tmp)

    def directory(self, org_id: int, doc_id: int) -> Path:
        return self.root / str(int(org_id)) / str(int(doc_id))

    def original(self, org_id: int, doc_id: int) -> Path:
        return self.directory(org_id, doc_id) / ORIGINAL

    def source(self, org_id: int, doc_id: int, extension: str) -> Path:
        """Where an uploaded office file waits for conversion; ``extension`` like ``.pptx``."""
        if not extension.startswith(".") or not extension[1:].isalnum():
            raise ValueError(f"bad extension {extension!r}")
        return self.directory(org_id, doc_id) / f"{SOURCE}{extension.lower()}"

    def pending_source(self, org_id: int, doc_id: int) -> Path | None:
        """The office file waiting for conversion, if there is one."""
        directory = self.directory(org_id, doc_id)
        if not directory.is_dir():
            return None
        return next((p for p in sorted(directory.iterdir()) if p.stem == SOURCE and p.is_file()), None)

    def pages_dir(self, org_id: int, doc_id: int) -> Path:
        return self.directory(org_id, doc_id) / PAGES

    def thumbs_dir(self, org_id: int, doc_id: int) -> Path:
        return self.directory(org_id, doc_id) / THUMBS

    def page(self, org_id: int, doc_id: int, n: int) -> Path:
        return self.pages_dir(org_id, doc_id) / f"{int(n)}.jpg"

    def thumb(self, org_id: int, doc_id: int, n: int) -> Path:
        return self.thumbs_dir(org_id, doc_id) / f"{int(n)}.jpg"

    def remove(self, org_id: int, doc_id: int) -> None:
        """Every file of the document (blocking; a few hundred files at most)."""
        # The org's folder stays: removing it could race with an upload being moved into it.
        shutil.rmtree(self.directory(org_id, doc_id), ignore_errors=True)

    def leftovers(self) -> list[Path]:
        """Uploads still in ``tmp/`` (tests check that none outlive their request)."""
        return sorted(self.tmp.glob("*")) if self.tmp.is_dir() else []
