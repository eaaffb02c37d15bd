"""共有メモ: a room's shared memo as one Yjs document (pycrdt), kept by the room's home node.

Pure computation, no I/O: the :class:`~signaling.room.Room` owns one :class:`SharedMemo` and turns what it
returns into frames and effects. Merging is Yjs's (the CRDT), never ours.

The saved memo must be what the participants see, and pycrdt (yrs) does not take every update the way Yjs
does. So each update is read first (:mod:`signaling.yjs_update`) and refused, changing nothing, when Yjs
would not integrate it the same way: a string that is not UTF-8 (lone surrogates), an insertion or deletion
that cuts a surrogate pair in two (Yjs turns both halves into U+FFFD, yrs does not), an update that starts
past what the server has from that client or needs items it lacks (Yjs keeps those pending; yrs shows some
of them at once), and content a plain-text memo does not have.

On the wire a ``memo.sync`` frame carries, base64-encoded, one standard y-protocols sync message *without*
the outer message-type byte: ``varUint(kind)`` (0 step 1, 1 step 2, 2 update) then ``varUint8Array(payload)``
— exactly what ``y-protocols/sync``'s ``writeSyncStep1`` / ``writeSyncStep2`` / ``writeUpdate`` write and
``readSyncMessage`` reads.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import structlog
from pycrdt import Doc, Text, merge_updates, write_var_uint

from core.errors import N_
from signaling.memo_quick import quick_take
from signaling.protocol import ErrorCode, Role
from signaling.yjs_update import (
    ID,
    BrokenText,
    NotText,
    Struct,
    StructKind,
    UnreadableUpdate,
    read_awareness,
    read_state_vector,
    read_update,
)

TEXT_NAME = "memo"  # the one shared Y.Text in the document (the browser uses ydoc.getText("memo"))
STEP1, STEP2, UPDATE = 0, 1, 2
EMPTY_UPDATE = b"\x00\x00"
MAX_AWARENESS_ENTRIES = 4  # a browser announces its own state; a few more leave room for a replaced doc
APPLY_BATCH = 32  # updates taken by the quick lane are applied to pycrdt this many at a time

log = structlog.get_logger("tsunagu.memo")


class BadMemoData(ValueError):
    """Not base64, not a sync message, or not a Yjs update this document can take."""


class MemoRefused(ValueError):
    """A readable update the memo does not take. Nothing changed; ``code`` and ``message`` (a message id) go
    back to the sender in an error frame."""

    code: ErrorCode
    message: str


class OutOfStep(MemoRefused):
    """The update starts past what the server has from its client, or needs items (or deletes clocks) the
    server does not have: Yjs would keep it pending. The sender is sent the server's step 1; its step 2 in
    answer brings everything missing, this update included."""

    code = ErrorCode.MEMO_OUT_OF_STEP
    message = N_("The shared memo is catching up with the other side.")


class BrokenCharacters(MemoRefused):
    """A string with lone surrogates (or not UTF-8), or an edit cutting a surrogate pair (an emoji) in two."""

    code = ErrorCode.MEMO_BROKEN_TEXT
    message = N_(
        "Your last edit of the shared memo would have broken a character (such as an emoji) in two, so it "
        "was not shared. The memo has been reloaded."
    )


class NotPlainText(MemoRefused):
    """Content other than the memo's plain text (formats, embeds, other types)."""

    code = ErrorCode.MEMO_NOT_TEXT
    message = N_(
        "The shared memo holds plain text only, so your last edit was not shared. The memo has been reloaded."
    )


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
    kind: int = STEP1  # the kind of the message received


Halves = dict[int, set[int]]  # client -> clocks that are the second half of a surrogate pair
# A character past U+FFFF (a surrogate pair in Yjs) in UTF-8: an update without this byte pattern has none.
# Reading a long memo's stored update item by item took ~50 ms for 4,000 characters (opening a room).
_ASTRAL_UTF8 = re.compile(rb"[\xf0-\xf4][\x80-\xbf]{3}")


def _second_halves(struct: Struct, into: Halves) -> None:
    """Note the clocks of ``struct``'s text that must not start a piece (the low half of each pair)."""
    text = struct.text
    if not text or text.isascii() or max(text) < "\U00010000":
        return
    clock = struct.clock
    halves = into.setdefault(struct.client, set())
    for char in text:
        if char > "\uffff":
            halves.add(clock + 1)
            clock += 2
        else:
            clock += 1


class SharedMemo:
    """The room's memo. An update is checked in full before it is taken (:meth:`receive`), except a common
    keystroke, which :func:`~signaling.memo_quick.quick_take` takes in one pass. Taken updates are applied to
    pycrdt in batches of :data:`APPLY_BATCH` in one transaction (a third of the cost of one at a time), and
    always before anything reads the document (a step 1, the text, the whole state): the checks never read
    pycrdt, they read the clocks, surrogate halves and deletions kept here."""

    def __init__(self, updates: list[bytes] | None = None) -> None:
        self._pending: list[bytes] = []  # taken, checked, not yet applied to pycrdt (in order)
        self._pending_bytes = 0  # their size: no update adds more characters than it has bytes
        self._applied_length: int | None = None  # the text's length in pycrdt, once read (None: read again)
        self._doc: Doc[Any] = Doc()
        self._doc[TEXT_NAME] = self._text = Text()
        self._halves: Halves = {}
        # Deletions already taken: an update made against a state vector (a step 2, pycrdt's get_update)
        # carries every deletion of its document again, and those were checked when they first came.
        self._deletions: set[tuple[int, int, int]] = set()
        for update in _apply_stored(self._doc, updates or []):
            self._note(update)
        self._clocks = read_state_vector(self._doc.get_state())  # each client's next clock

    def _note(self, update: bytes) -> None:
        if not _ASTRAL_UTF8.search(update):
            return  # no character past U+FFFF anywhere in it, so no surrogate pair to note (and no reading)
        try:
            structs = read_update(update).structs
        except ValueError:
            return
        for struct in structs:
            _second_halves(struct, self._halves)

    @property
    def doc(self) -> Doc[Any]:
        """The pycrdt document, every update taken so far applied."""
        self.apply_pending()
        return self._doc

    def text(self) -> str:
        self.apply_pending()
        return str(self._text)

    def state_update(self) -> bytes:
        """The whole document as one update (for storing a compacted memo)."""
        self.apply_pending()
        return self._doc.get_update()

    def step1(self) -> bytes:
        self.apply_pending()
        return sync_message(STEP1, self._doc.get_state())

    def length_at_most(self) -> int:
        """An upper bound of the text's length (in characters) without applying what is pending: what pycrdt
        has plus the pending updates' bytes (the memo's length cap checks this first, see memo_cap.py)."""
        if self._applied_length is None:
            self._applied_length = len(str(self._text))
        return self._applied_length + self._pending_bytes

    @property
    def pending(self) -> int:
        """Updates taken but not yet applied to pycrdt."""
        return len(self._pending)

    def apply_pending(self) -> None:
        """Apply the updates taken so far to pycrdt, in order, in one transaction."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self._pending_bytes, self._applied_length = 0, None
        try:
            with self._doc.transaction():
                for update in pending:
                    self._doc.apply_update(update)
        except BaseException as exc:
            if not _unreadable(exc):
                raise
            # Checked updates pycrdt still refused (never seen): apply what it takes, one by one (applying an
            # update twice changes nothing), and read the clocks back from what it has.
            log.warning("memo.batch_not_applied", updates=len(pending), error=repr(exc))
            for update in pending:
                try:
                    self._doc.apply_update(update)
                except BaseException as again:
                    if not _unreadable(again):
                        raise
            self._clocks = read_state_vector(self._doc.get_state())

    def receive(self, message: bytes, parsed: tuple[int, bytes] | None = None) -> SyncResult:
        """Handle one sync message from a participant: :class:`BadMemoData` when it is not a valid one,
        :class:`MemoRefused` when it is one the memo does not take (the memo is then unchanged).
        ``parsed``: ``parse_sync_message(message)``, when the caller has read it already."""
        kind, payload = parsed if parsed is not None else parse_sync_message(message)
        if kind == STEP1:
            self.apply_pending()
            try:
                missing = self._doc.get_update(payload)
            except BaseException as exc:
                if _unreadable(exc):
                    raise BadMemoData() from exc
                raise
            return SyncResult(reply=[sync_message(STEP2, missing), self.step1()])
        if payload == EMPTY_UPDATE:
            return SyncResult(reply=[])
        if quick_take(payload, self._clocks, self._halves, self._deletions):
            self._pending.append(payload)
            self._pending_bytes += len(payload)
            if len(self._pending) >= APPLY_BATCH:
                self.apply_pending()
            return SyncResult(reply=[], update=payload, kind=kind)
        self.apply_pending()
        halves, deletions, known = self._check(payload)
        self._applied_length = None
        try:
            self._doc.apply_update(payload)
        except BaseException as exc:
            self._clocks = read_state_vector(self._doc.get_state())  # whatever pycrdt kept of it
            if _unreadable(exc):
                raise BadMemoData() from exc
            raise
        for client, clocks in halves.items():
            self._halves.setdefault(client, set()).update(clocks)
        self._deletions.update(deletions)
        self._clocks = known  # what the checks found is what pycrdt now has
        return SyncResult(reply=[], update=payload, kind=kind)

    def _check(self, payload: bytes) -> tuple[Halves, list[tuple[int, int, int]], dict[int, int]]:
        """Refuse ``payload`` unless Yjs and pycrdt would both integrate all of it, the same way. Returns the
        second halves of the surrogate pairs it brings, its deletions not seen before, and the clocks known
        once it is applied."""
        try:
            update = read_update(payload)
        except UnreadableUpdate as exc:
            raise BadMemoData() from exc
        except BrokenText as exc:
            raise BrokenCharacters() from exc
        except NotText as exc:
            raise NotPlainText() from exc
        state = self._clocks
        new: dict[int, list[Struct]] = {}
        halves: Halves = {}
        for struct in update.structs:
            if struct.kind is StructKind.SKIP:
                raise OutOfStep()  # a gap in the sender's own history: Yjs would wait for it
            if struct.client not in new and struct.clock > state.get(struct.client, 0):
                raise OutOfStep()  # the first struct of each client must follow on from what is known
            if struct.kind is StructKind.ITEM and struct.origin is None and struct.right_origin is None:
                if struct.parent != TEXT_NAME or struct.parent_key is not None:
                    raise NotPlainText()
            _second_halves(struct, halves)
            queue = new.setdefault(struct.client, [])
            if struct.end > state.get(struct.client, 0):
                queue.append(struct)
        known = self._integrate(new, state)
        deletions = [deletion for deletion in update.deletes if deletion not in self._deletions]
        for client, clock, length in deletions:
            if clock + length > known.get(client, 0):
                raise OutOfStep()  # deletes what the server has not got: Yjs keeps it pending
        self._check_cuts(new, deletions, state, halves)
        return halves, deletions, known

    @staticmethod
    def _integrate(new: dict[int, list[Struct]], state: dict[int, int]) -> dict[int, int]:
        """Walk the new structs the way Yjs integrates them (each once what it refers to is there); any left
        over would stay pending. Returns the clocks known afterwards."""
        known = dict(state)

        def there(at: ID | None) -> bool:
            return at is None or at.clock < known.get(at.client, 0)

        queues = {client: list(reversed(structs)) for client, structs in new.items() if structs}
        progress = True
        while progress:
            progress = False
            for client, queue in queues.items():
                while queue:
                    struct = queue[-1]
                    fresh = struct.clock >= known.get(client, 0)  # else its known start is cut off
                    if struct.kind is StructKind.ITEM and not (
                        (not fresh or there(struct.origin)) and there(struct.right_origin)
                    ):
                        break
                    known[client] = struct.end
                    queue.pop()
                    progress = True
        if any(queues.values()):
            raise OutOfStep()
        return known

    def _check_cuts(
        self,
        new: dict[int, list[Struct]],
        deletions: list[tuple[int, int, int]],
        state: dict[int, int],
        halves: Halves,
    ) -> None:
        """Refuse an update whose items or deletions start or end between the halves of a surrogate pair."""

        def inside_pair(client: int, clock: int) -> bool:
            return clock in self._halves.get(client, ()) or clock in halves.get(client, ())

        for client, structs in new.items():
            for struct in structs:
                if struct.kind is not StructKind.ITEM:
                    continue
                if struct.clock < state.get(client, 0):
                    if inside_pair(client, state[client]):  # Yjs would cut its known start off there
                        raise BrokenCharacters()
                elif struct.origin is not None and inside_pair(struct.origin.client, struct.origin.clock + 1):
                    raise BrokenCharacters()
                right = struct.right_origin
                if right is not None and inside_pair(right.client, right.clock):
                    raise BrokenCharacters()
        for client, clock, length in deletions:
            if inside_pair(client, clock) or inside_pair(client, clock + length):
                raise BrokenCharacters()

    def insert(self, position: int, text: str) -> bytes:
        """Insert ``text`` server-side (tests and tools); returns the update to forward."""
        self.apply_pending()
        self._applied_length = None
        before = self._doc.get_state()
        current = str(self._text)
        self._text.insert(len(current[:position].encode()), text)  # pycrdt 0.14 counts UTF-8 bytes
        update = self._doc.get_update(before)
        self._note(update)
        self._clocks = read_state_vector(self._doc.get_state())
        return update


def check_awareness(data: bytes, role: Role) -> None:
    """Refuse (:class:`BadMemoData`) an awareness update a browser's y-protocols could not apply, or one that
    speaks for the other participant: each entry's state must be JSON ``null`` or an object, and an object's
    ``role``, when given, must be the sender's."""
    try:
        entries = read_awareness(data)
    except UnreadableUpdate as exc:
        raise BadMemoData() from exc
    if not entries or len(entries) > MAX_AWARENESS_ENTRIES:
        raise BadMemoData()
    for _client, _clock, state in entries:
        if state is None:
            continue
        if not isinstance(state, dict) or state.get("role", role.value) != role.value:
            raise BadMemoData()


def merged(updates: list[bytes]) -> bytes:
    """Many stored updates as one (compaction); Yjs merges them, the result applies to the same text."""
    return merge_updates(*updates) if len(updates) > 1 else (updates[0] if updates else EMPTY_UPDATE)


def text_of(updates: list[bytes]) -> str:
    """The memo's text rebuilt from its stored updates (a room whose home is not this node), applied as a
    room applies them on opening. Without the bookkeeping a room's
    checks need: reading every item of a long memo for it took ~50 ms for 4,000 characters."""
    doc: Doc[Any] = Doc()
    doc[TEXT_NAME] = text = Text()
    _apply_stored(doc, updates)
    return str(text)


def _apply_stored(doc: Doc[Any], updates: list[bytes]) -> list[bytes]:
    """Apply a memo's stored updates in order; returns those applied. One that cannot be read is skipped: a
    stored row must not keep the room from opening."""
    applied = []
    for update in updates:
        try:
            doc.apply_update(update)
        except ValueError:
            continue
        applied.append(update)
    return applied
