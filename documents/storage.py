"""Where a document's files are kept (through ``core.storage``, on this box or in object storage), and
uploads that appear there only once they are complete.

Keys::

    documents/<org>/<doc>/original.pdf    the uploaded PDF (or the PDF LibreOffice made from an office file)
    documents/<org>/<doc>/source.<ext>    an uploaded office file, until it has been converted
    documents/<org>/<doc>/pages/<n>.jpg   page n, 1280 px wide, shown in meetings
    documents/<org>/<doc>/thumbs/<n>.jpg  page n, 240 px wide, for the library list

(On this box's disk, ``<data_dir>/documents/…``, as always.) An upload is streamed to storage as it arrives
and kept under its key only once every byte has arrived and its row is written; a failed, oversized or
interrupted upload is discarded, and a rejected document has every key under its prefix removed. The worker
renders into a local workspace; each page is stored as soon as it is rendered. Nothing here touches the
database.
"""

from __future__ import annotations

from core.storage import Storage
from core.uploads import Upload

DISPLAY_WIDTH = 1280  # px: the page as shown in a meeting
THUMB_WIDTH = 240  # px: the library's thumbnails
ORIGINAL = "original.pdf"
SOURCE = "source"  # + the office file's extension, e.g. source.pptx
PAGES = "pages"
THUMBS = "thumbs"


class DocumentStorage:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def new_upload(self) -> Upload:
        return Upload(self.storage.writer())

    def prefix(self, org_id: int, doc_id: int) -> str:
        return f"documents/{int(org_id)}/{int(doc_id)}/"

    def original(self, org_id: int, doc_id: int) -> str:
        return self.prefix(org_id, doc_id) + ORIGINAL

    def source(self, org_id: int, doc_id: int, extension: str) -> str:
        """Where an uploaded office file waits for conversion; ``extension`` like ``.pptx``."""
        if not extension.startswith(".") or not extension[1:].isalnum():
            raise ValueError(f"bad extension {extension!r}")
        return self.prefix(org_id, doc_id) + f"{SOURCE}{extension.lower()}"

    async def pending_source(self, org_id: int, doc_id: int) -> str | None:
        """The office file waiting for conversion, if there is one."""
        prefix = self.prefix(org_id, doc_id)
        for key in await self.storage.keys(prefix):
            name = key[len(prefix) :]
            if name.startswith(f"{SOURCE}.") and "/" not in name:
                return key
        return None

    def page(self, org_id: int, doc_id: int, n: int) -> str:
        return self.prefix(org_id, doc_id) + f"{PAGES}/{int(n)}.jpg"

    def thumb(self, org_id: int, doc_id: int, n: int) -> str:
        return self.prefix(org_id, doc_id) + f"{THUMBS}/{int(n)}.jpg"

    async def remove(self, org_id: int, doc_id: int) -> None:
        """Every file of the document (a few hundred at most)."""
        await self.storage.delete_prefix(self.prefix(org_id, doc_id))
