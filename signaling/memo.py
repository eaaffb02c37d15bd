"""共有メモ: a room's shared memo as one Yjs document (pycrdt), kept by the room's home node.

Pure computation, no I/O: the :class:`~signaling.room.Room` owns one :class:`SharedMemo` and turns what it
returns into frames and effects. Merging is Yjs's (the CRDT), never ours.

On the wire a ``memo.sync`` frame carries, base64-encoded, one standard y-protocols sync message *without*
the outer message-type byte: ``varUint(kind)`` (0 step 1, 1 step 2, 2 update) then ``varUint8Array(payload)``
— exactly what ``y-protocols/sync``'s ``writeSyncStep1`` / ``writeSyncStep2`` / ``writeUpdate`` write and
``readSyncMessage`` reads.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text, merge_updates, write_var_uint

TEXT_NAME = "memo"  # the one shared Y.Text in the document (the browser uses ydoc.getText("memo"))
STEP1, STEP2, UPDATE = 0, 1, 2
EMPTY_UPDATE = b"\x00\x00"


class BadMemoData(ValueError):
    """Not base64, not a sync message, or not a Yjs update this document can take."""


def _unreadable(exc: BaseException) -> bool:
    """pycrdt raises ValueError for a bad update; a Rust panic surfaces as pyo3's PanicException, which is
    a BaseException: both mean the client's data was bad, never that the room should die."""
    return isinstance(exc, ValueError) or type(exc).__name__ == "PanicException"


def decode(data: str) -> bytes:
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise BadMemoData() from exc


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sync_message(kind: int, payload: bytes) -> bytes:
    """One y-protocols sync message (without the outer message-type byte)."""
    return write_var_uint(kind) + write_var_uint(len(payload)) + payload


def _read_var_uint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 35:
            raise BadMemoData()
        byte = data[offset]
        value |= (byte & 0x7F) << shift
        offset += 1
        shift += 7
        if byte < 0x80:
            return value, offset


def parse_sync_message(message: bytes) -> tuple[int, bytes]:
    """``(kind, payload)`` of one sync message; the payload must fill the rest of the message exactly."""
    kind, offset = _read_var_uint(message, 0)
    length, offset = _read_var_uint(message, offset)
    if kind not in (STEP1, STEP2, UPDATE) or offset + length != len(message):
        raise BadMemoData()
    return kind, message[offset:]


@dataclass(frozen=True)
class SyncResult:
    """What one incoming sync message asks for."""

    reply: list[bytes]  # sync messages for the sender
    update: bytes | None = None  # a change to store and to forward (as an update message) to the others


class SharedMemo:
    def __init__(self, updates: list[bytes] | None = None) -> None:
        self.doc: Doc[Any] = Doc()
        self.doc[TEXT_NAME] = self._text = Text()
        for update in updates or []:
            try:
                self.doc.apply_update(update)
            except ValueError:
                continue  # a stored row that cannot be read must not keep the room from opening

    def text(self) -> str:
        return str(self._text)

    def state_update(self) -> bytes:
        """The whole document as one update (for storing a compacted memo)."""
        return self.doc.get_update()

    def step1(self) -> bytes:
        return sync_message(STEP1, self.doc.get_state())

    def receive(self, message: bytes) -> SyncResult:
        """Handle one sync message from a participant; :class:`BadMemoData` when it is not a valid one."""
        kind, payload = parse_sync_message(message)
        if kind == STEP1:
            try:
                missing = self.doc.get_update(payload)
            except BaseException as exc:
                if _unreadable(exc):
                    raise BadMemoData() from exc
                raise
            return SyncResult(reply=[sync_message(STEP2, missing), self.step1()])
        if payload == EMPTY_UPDATE:
            return SyncResult(reply=[])
        try:
            self.doc.apply_update(payload)
        except BaseException as exc:
            if _unreadable(exc):
                raise BadMemoData() from exc
            raise
        return SyncResult(reply=[], update=payload)

    def insert(self, position: int, text: str) -> bytes:
        """Insert ``text`` server-side (tests and tools); returns the update to forward."""
        before = self.doc.get_state()
        current = str(self._text)
        self._text.insert(len(current[:position].encode()), text)  # pycrdt 0.14 counts UTF-8 bytes
        return self.doc.get_update(before)


def merged(updates: list[bytes]) -> bytes:
    """Many stored updates as one (compaction); Yjs merges them, the result applies to the same text."""
    return merge_updates(*updates) if len(updates) > 1 else (updates[0] if updates else EMPTY_UPDATE)


def text_of(updates: list[bytes]) -> str:
    """The memo's text rebuilt from its stored updates (a room whose home is not this node)."""
    return SharedMemo(updates).text()


def line_authors(updates: list[tuple[bytes, str]]) -> list[tuple[str, str]]:
    """Each line of the final memo with the author of the update that last made it appear (best effort):
    replays ``(update, author)`` in order and, for each line, keeps the author who first produced its
    final text. Merged (compacted) rows are attributed ``"merged"``."""
    memo = SharedMemo()
    owner: dict[str, str] = {}
    for update, author in updates:
        try:
            memo.doc.apply_update(update)
        except ValueError:
            continue
        for line in memo.text().split("\n"):
            owner.setdefault(line, author)
    return [(line, owner.get(line, "")) for line in memo.text().split("\n")]
