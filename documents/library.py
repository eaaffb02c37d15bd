"""The document library: rows, who sees what, and the jobs that turn an upload into page images.

An upload becomes a ``Document`` row (status PROCESSING) whose file is already in place (see
``documents.storage``); :class:`DocumentJobs` then runs ``documents.worker`` in a subprocess for it, at most
``concurrency`` at a time, and copies the worker's progress into the row as it arrives.

A rejected document keeps its row, with status FAILED and ``error`` the message id saying why, so the
uploader sees the reason in the library (and deletes the row when done with it); every file of it, the
upload included, is removed at once. A job interrupted by shutdown ends the same way ("please upload again").

Several nodes share the database: the node processing a document holds a lease on it (``documents.leases``),
renewed while it works, and writes the row only while it holds it. When a node starts, and every
:data:`RECOVER_EVERY` seconds after, it takes the documents left processing by a node that died (their lease
lapsed) and renders them again; one already taken :data:`~documents.leases.MAX_ATTEMPTS` times is failed with
the "interrupted, upload again" message instead, so that a document that kills its node is not retried for
ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock, wall_clock
from core.errors import N_, InvalidInput, NotFound
from core.names import display_name
from core.sandbox import python_env
from core.storage import BlobNotFound, Storage
from documents import leases
from documents.errors import (
    ERRORS,
    BadPageSize,
    ConversionFailed,
    DocumentDamaged,
    DocumentError,
    DocumentTooLarge,
    DocumentUnprocessable,
    NotAPdf,
    OfficeUnavailable,
    PasswordProtected,
    ProcessingInterrupted,
    TooManyPages,
)
from documents.models import Document, DocumentKind, DocumentStatus
from documents.storage import ORIGINAL, PAGES, THUMBS, DocumentStorage
from documents.worker import OFFICE_EXTENSIONS

__all__ = [
    "BadPageSize",
    "ConversionFailed",
    "DocumentDamaged",
    "DocumentError",
    "DocumentJobs",
    "DocumentTooLarge",
    "DocumentUnprocessable",
    "NotAPdf",
    "OfficeUnavailable",
    "PasswordProtected",
    "ProcessingInterrupted",
    "TooManyPages",
    "create_document",
    "delete_document",
    "document_for_org",
    "is_office",
    "sanitise_name",
    "set_kind",
    "visible_documents",
]

log = structlog.get_logger("tsunagu.documents")

WORKER_MEMORY_MB = 1024
CONVERTER_MEMORY_MB = 3072  # LibreOffice maps far more address space than it touches
PROGRESS_EVERY = 0.5  # s: the library polls once a second; no need to write the row for every page
RENDER_WALL_FACTOR = 3.0  # the whole run's wall-clock net, in multiples of its CPU-time limit
RECOVER_EVERY = 30.0  # s: how often a node looks for documents whose node died (and once when it starts)


class DocumentSettings(Protocol):
    """What the jobs need from the app's settings (``web.settings.Settings`` has these)."""

    @property
    def data_dir(self) -> Path: ...
    @property
    def node_id(self) -> str: ...
    @property
    def document_max_pages(self) -> int: ...
    @property
    def document_render_timeout_seconds(self) -> float: ...
    @property
    def document_validation_timeout_seconds(self) -> float: ...
    @property
    def document_validation_cpu_seconds(self) -> float: ...


# --- names ------------------------------------------------------------------------------------------------


def sanitise_name(raw: str) -> str:
    """A display name from what the browser says the file was called (``core.names.display_name``: no
    folders, no control or bidi characters, NFC, at most 255 bytes with the extension kept). Never a path."""
    return display_name(raw, "document")


def is_office(name: str) -> bool:
    return Path(name).suffix.lower() in OFFICE_EXTENSIONS


# --- rows -------------------------------------------------------------------------------------------------


async def create_document(
    db: AsyncSession, *, org_id: int, owner_id: int, name: str, org_wide: bool, size: int
) -> Document:
    document = Document(
        org_id=org_id,
        owner_id=owner_id,
        org_wide=org_wide,
        name=sanitise_name(name),
        kind=DocumentKind.SLIDES,
        status=DocumentStatus.PROCESSING,
        error="",
        size=size,
        pages=0,
        rendered=0,
    )
    db.add(document)
    await db.flush()
    return document


async def visible_documents(db: AsyncSession, user_id: int, org_id: int) -> list[Document]:
    """The user's own documents and the org-wide ones, newest first."""
    rows = await db.scalars(
        select(Document)
        .where(Document.org_id == org_id, or_(Document.owner_id == user_id, Document.org_wide.is_(True)))
        .order_by(Document.created_at.desc(), Document.id.desc())
    )
    return list(rows)


async def document_for_org(db: AsyncSession, org_id: int, doc_id: int) -> Document:
    document = await db.scalar(select(Document).where(Document.id == doc_id, Document.org_id == org_id))
    if document is None:
        raise NotFound()
    return document


async def set_kind(db: AsyncSession, document: Document, kind: str) -> None:
    try:
        document.kind = DocumentKind(kind)
    except ValueError as exc:
        raise InvalidInput(N_("Choose slides or vertical.")) from exc
    await db.flush()


async def delete_document(db: AsyncSession, storage: DocumentStorage, document: Document) -> None:
    """The row and every file. Cancel its job first (``DocumentJobs.cancel``) if it may be running."""
    org_id, doc_id = document.org_id, document.id
    await db.delete(document)
    await db.flush()
    await storage.remove(org_id, doc_id)


# --- jobs -------------------------------------------------------------------------------------------------


class _Abandoned(Exception):
    """The document was deleted while its job ran: nothing to record."""


class DocumentJobs:
    """Runs the worker for uploaded documents as asyncio tasks, at most ``concurrency`` at once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: DocumentSettings,
        storage: Storage,
        *,
        concurrency: int = 2,
        office: str | None = None,
        clock: Clock = wall_clock,
    ) -> None:
        self.sessions = sessions
        self.node_id = settings.node_id
        self.clock = clock
        self.storage = DocumentStorage(storage)
        self.max_pages = settings.document_max_pages
        # CPU time is what limits the work (the worker enforces it); the wall-clock deadlines are a safety
        # net, generous so that a busy machine slows a document down rather than refusing it.
        self.render_timeout = float(settings.document_render_timeout_seconds)  # CPU s; wall net: ×3
        self.validation_cpu = float(settings.document_validation_cpu_seconds)
        self.validation_timeout = float(settings.document_validation_timeout_seconds)  # wall net
        # LibreOffice converts office files when it is installed; tests may set this to None.
        self.office = office or shutil.which("soffice") or shutil.which("libreoffice")
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._closed = False

    def start(self, doc_id: int, *, taken: bool = False) -> None:
        """Process an uploaded document (its row committed, its file in place). ``taken``: this node holds
        its lease already (:meth:`recover` took it)."""
        if self._closed or doc_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._job(doc_id, taken), name=f"document-{doc_id}")
        self._tasks[doc_id] = task
        task.add_done_callback(lambda _task: self._tasks.pop(doc_id, None))

    async def cancel(self, doc_id: int) -> None:
        """Stop a document's job (it is being deleted) and wait until its worker is dead."""
        task = self._tasks.get(doc_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def recover(self) -> list[int]:
        """Take the documents left processing by a node that died (their lease lapsed) and render them again,
        or fail those already tried :data:`~documents.leases.MAX_ATTEMPTS` times; the ids this node took.
        Nodes that recover at the same moment take each document once between them."""
        if self._closed:
            return []
        async with self.sessions() as db:
            found = await leases.orphaned(db, self.clock())
        taken = []
        for doc_id, org_id, attempts in found:
            if doc_id in self._tasks:
                continue  # this node is rendering it now
            async with self.sessions.begin() as db:
                if not await leases.take(db, doc_id, self.node_id, self.clock()):
                    continue  # another node took it first
            taken.append(doc_id)
            if attempts >= leases.MAX_ATTEMPTS:
                log.warning("document abandoned", document=doc_id, attempts=attempts + 1)
                await self._fail(doc_id, org_id, ProcessingInterrupted())
            else:
                log.info("document taken over", document=doc_id, attempts=attempts + 1)
                self.start(doc_id, taken=True)
        return taken

    async def recovering(self) -> None:
        """:meth:`recover` now and every :data:`RECOVER_EVERY` seconds, for as long as the node runs."""
        while not self._closed:
            try:
                await self.recover()
            except Exception as exc:  # the database away for a moment: look again next round
                log.warning("documents.recovery_failed", error=repr(exc))
            await asyncio.sleep(RECOVER_EVERY)

    async def idle(self) -> None:
        """Wait for the jobs running now (tests and benches)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks.values()))

    async def aclose(self) -> None:
        """Shutdown: stop every job, then mark its document FAILED ("upload again") and remove its files."""
        self._closed = True
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        if tasks:
            await asyncio.wait(tasks.values())
        for doc_id in tasks:
            async with self.sessions() as db:
                document = await db.get(Document, doc_id)
                unfinished = document is not None and document.status == DocumentStatus.PROCESSING
                org_id = document.org_id if document is not None else 0
            if unfinished:  # a job may have finished just before it was cancelled: leave that one be
                await self._fail(doc_id, org_id, ProcessingInterrupted())

    # The job ------------------------------------------------------------------------------------------

    async def _job(self, doc_id: int, taken: bool) -> None:
        # Cancellation (delete, shutdown) is not caught here: the worker is killed on the way out and
        # whoever cancelled cleans up (``delete_document`` removes everything; ``aclose`` marks it FAILED).
        async with self.sessions() as db:
            document = await db.get(Document, doc_id)
            if document is None or document.status != DocumentStatus.PROCESSING:
                return
            org_id = document.org_id
        if not taken:
            async with self.sessions.begin() as db:
                if not await leases.take(db, doc_id, self.node_id, self.clock()):
                    return  # another node renders it
        renewing = asyncio.create_task(self._renewing(doc_id), name=f"document-{doc_id}-lease")
        try:
            async with self._slots:
                started = time.monotonic()
                await self._process(doc_id, org_id)
                log.info("document ready", document=doc_id, seconds=round(time.monotonic() - started, 2))
        except _Abandoned:  # deleted meanwhile (whatever the worker wrote since goes too), or taken over
            async with self.sessions() as db:
                deleted = await db.get(Document, doc_id) is None
            if deleted:
                await self.storage.remove(org_id, doc_id)
        except DocumentError as exc:
            log.info("document refused", document=doc_id, reason=exc.code)
            await self._fail(doc_id, org_id, exc)
        except Exception:
            log.exception("document job failed", document=doc_id)
            await self._fail(doc_id, org_id, DocumentUnprocessable())
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renewing(self, doc_id: int) -> None:
        """Keep this node's lease on ``doc_id`` while its job runs (waiting for a slot included)."""
        while True:
            await asyncio.sleep(leases.RENEW_EVERY)
            try:
                async with self.sessions.begin() as db:
                    held = await leases.renew(db, doc_id, self.node_id, self.clock())
            except Exception as exc:  # the database away for a moment: the lease has time left
                log.warning("document.lease_renewal_failed", document=doc_id, error=repr(exc))
                continue
            if not held:  # finished, deleted, or taken over: the job's next write finds out and stops
                return

    async def _process(self, doc_id: int, org_id: int) -> None:
        """Render in a local workspace (the worker needs files), storing each page as soon as it is done."""
        files = self.storage
        async with files.storage.workspace() as work, contextlib.AsyncExitStack() as stack:
            source = await files.pending_source(org_id, doc_id)
            if source is not None:
                if self.office is None:
                    raise OfficeUnavailable()
                office_file = await stack.enter_async_context(files.storage.local_file(source))
                original = work / ORIGINAL
                command = ["convert", str(office_file), str(original), "--office", self.office]
                command += ["--timeout", str(self.render_timeout)]
                await self._run_worker(command, CONVERTER_MEMORY_MB, self.render_timeout, _ignore)
                if not original.is_file():
                    raise DocumentDamaged()
            else:
                try:
                    original = await stack.enter_async_context(
                        files.storage.local_file(files.original(org_id, doc_id))
                    )
                except BlobNotFound as exc:
                    raise DocumentDamaged() from exc
            last_write = 0.0
            out = work / "out"

            async def progress(message: dict[str, Any]) -> None:
                nonlocal last_write
                values: dict[str, Any] = {}
                if message.get("validated"):
                    values = {"pages": int(message["pages"]), "kind": DocumentKind(message["kind"])}
                elif "rendered" in message:
                    n = int(message["rendered"])
                    await files.storage.put_file(files.page(org_id, doc_id, n), out / PAGES / f"{n}.jpg")
                    await files.storage.put_file(files.thumb(org_id, doc_id, n), out / THUMBS / f"{n}.jpg")
                    if time.monotonic() - last_write >= PROGRESS_EVERY:
                        values = {"rendered": n}
                if values:
                    last_write = time.monotonic()
                    await self._update(doc_id, values)

            command = ["render", str(original), str(out), "--max-pages", str(self.max_pages)]
            done = await self._run_worker(command, WORKER_MEMORY_MB, self.validation_timeout, progress)
            pages = int(done.get("pages", 0))
            if pages < 1:
                raise DocumentUnprocessable()
            for n in (1, pages):
                for key in (files.page(org_id, doc_id, n), files.thumb(org_id, doc_id, n)):
                    if await files.storage.stat(key) is None:
                        raise DocumentUnprocessable()
            if source is not None:  # the converted PDF is kept in place of the office file
                await files.storage.put_file(files.original(org_id, doc_id), original)
                await files.storage.delete(source)
        await self._update(doc_id, {"status": DocumentStatus.READY, "pages": pages, "rendered": pages})

    async def _run_worker(
        self,
        arguments: list[str],
        memory_mb: int,
        first_timeout: float,
        on_message: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> dict[str, Any]:
        """Run ``python -m documents.worker``; return its final line. The worker limits its own CPU time
        (``validation_cpu`` until it has validated, ``render_timeout`` in all); as a safety net the group is
        killed past ``first_timeout`` of wall-clock time to the first line or ``RENDER_WALL_FACTOR`` ×
        ``render_timeout`` in all."""
        cpu_seconds = max(1, int(self.render_timeout))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "documents.worker",
            "--memory-mb",
            str(memory_mb),
            "--cpu-seconds",
            str(cpu_seconds),
            "--validation-cpu-seconds",
            str(self.validation_cpu),
            *arguments,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so a kill reaches LibreOffice too
            env=python_env(),
        )
        assert process.stdout is not None and process.stderr is not None
        stderr_tail: deque[bytes] = deque(maxlen=20)
        drain = asyncio.create_task(_drain(process.stderr, stderr_tail))
        loop = asyncio.get_running_loop()
        began = loop.time()
        whole_run = RENDER_WALL_FACTOR * self.render_timeout
        deadline = began + min(first_timeout, whole_run)
        last: dict[str, Any] = {}
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.warning("document worker timed out", arguments=arguments[:1])
                    raise DocumentUnprocessable()
                try:
                    line = await asyncio.wait_for(process.stdout.readline(), remaining)
                except TimeoutError:
                    continue
                except ValueError as exc:  # a line longer than the stream limit: not our protocol
                    raise DocumentUnprocessable() from exc
                if not line:
                    break
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if "error" in message:
                    raise ERRORS.get(str(message["error"]), DocumentUnprocessable)()
                deadline = began + whole_run  # validated (or converted): the whole-run net
                last = message
                await on_message(message)
            status = await process.wait()
            if status != 0 or not (last.get("done") or last.get("converted")):
                log.warning(
                    "document worker died",
                    status=status,
                    stderr=b"".join(stderr_tail).decode(errors="replace")[-2000:],
                )
                raise DocumentUnprocessable()
            return last
        finally:
            # The whole group, also when the worker has exited: nothing it started may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.stdout.read(), 2)
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain

    async def _update(self, doc_id: int, values: dict[str, Any]) -> None:
        async with self.sessions.begin() as db:
            result = await db.execute(
                update(Document)
                .where(
                    Document.id == doc_id,
                    Document.status == DocumentStatus.PROCESSING,
                    # A node that lost its lease writes nothing (one cancelled before it took one may).
                    or_(Document.lease_node == self.node_id, Document.lease_node.is_(None)),
                )
                .values(**values)
            )
        if getattr(result, "rowcount", 1) == 0:
            raise _Abandoned()

    async def _fail(self, doc_id: int, org_id: int, error: DocumentError) -> None:
        """Remove the document's files and mark it FAILED with ``error``, unless another node holds it now."""
        async with self.sessions() as db:
            document = await db.get(Document, doc_id)
            if document is not None and document.lease_node not in (None, self.node_id):
                return  # taken over: its files are the new holder's
        await self.storage.remove(org_id, doc_id)
        values = {"status": DocumentStatus.FAILED, "error": error.message, "rendered": 0}
        with contextlib.suppress(_Abandoned):
            await self._update(doc_id, values)


async def _ignore(_message: dict[str, Any]) -> None:
    return None


async def _drain(stream: asyncio.StreamReader, tail: deque[bytes]) -> None:
    """Keep reading the worker's stderr (a full pipe would block it), remembering the last lines."""
    while True:
        line = await stream.readline()
        if not line:
            return
        tail.append(line[:500])
