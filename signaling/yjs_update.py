"""Reading a Yjs update (format v1) without applying it: what the memo looks at before pycrdt sees an update.

pycrdt (yrs) and Yjs do not take every update the same way (an item past its client's clock, a string
that cuts a character in two), so the memo reads each update itself first. The layout is Yjs's
(``yjs/src/utils/encoding.js``, ``UpdateDecoderV1``)::

    update    = varUint(#clients) { varUint(#structs) varUint(client) varUint(clock) struct* } deleteSet
    struct    = info:uint8, then by info & 0x1f: 0 GC (varUint length), 10 Skip (varUint length), else item
    item      = [origin ID if info & 0x80] [right origin ID if info & 0x40]
                [if neither: varUint(1) varString(root) | varUint(0) ID(parent); varString(key) if 0x20]
                content (by info & 0x1f: 1 deleted: varUint length, 4 string: varString, others: not text)
    deleteSet = varUint(#clients) { varUint(client) varUint(#ranges) { varUint(clock) varUint(length) } }

Only what a plain-text memo uses is read in full: string and deleted content. An item of any other content
stops the reading with :class:`NotText` (the memo refuses it anyway). Numbers above 2**53 - 1 are refused, as
lib0 refuses them: a browser could not read them.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import NamedTuple

MAX_SAFE_INTEGER = 2**53 - 1
GC_REF, DELETED_REF, STRING_REF, SKIP_REF = 0, 1, 4, 10
ORIGIN, RIGHT_ORIGIN, PARENT_SUB = 0x80, 0x40, 0x20


class UnreadableUpdate(ValueError):
    """Not a Yjs v1 update: truncated, trailing bytes, a number out of range, an unknown struct."""


class BrokenText(ValueError):
    """A string that is not valid UTF-8: lone surrogates (Yjs never sends them) or bytes Yjs cannot read."""


class NotText(ValueError):
    """Content a plain-text memo does not have (embeds, formats, nested types, JSON, binary, subdocuments)."""


class ID(NamedTuple):
    client: int
    clock: int


class StructKind(enum.Enum):
    ITEM = "item"
    GC = "gc"  # a collected range: takes clocks, holds nothing
    SKIP = "skip"  # a gap left by merging updates that do not follow each other


@dataclass(slots=True)  # not frozen: one is made per struct read, and frozen fields cost a call each
class Struct:
    kind: StructKind
    client: int
    clock: int
    length: int  # in clock units: UTF-16 code units for strings, as Yjs counts
    origin: ID | None = None
    right_origin: ID | None = None
    parent: str | ID | None = None  # read only when the item has no origin at all
    parent_key: str | None = None
    deleted: bool = False  # content "deleted" (a length, no text)
    text: str | None = None  # string content

    @property
    def end(self) -> int:
        return self.clock + self.length


@dataclass(frozen=True, slots=True)
class Update:
    structs: list[Struct]  # grouped by client, each client's structs in clock order
    deletes: list[tuple[int, int, int]]  # (client, clock, length)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def var_uint(self) -> int:
        data, pos = self.data, self.pos
        if pos < len(data) and data[pos] < 0x80:  # most numbers in an update are below 128
            self.pos = pos + 1
            return data[pos]
        value = shift = 0
        while pos < len(data):
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                if value > MAX_SAFE_INTEGER:
                    raise UnreadableUpdate("number out of range")
                self.pos = pos
                return value
            if shift > 56:
                raise UnreadableUpdate("number out of range")
        raise UnreadableUpdate("truncated")

    def uint8(self) -> int:
        if self.pos >= len(self.data):
            raise UnreadableUpdate("truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise UnreadableUpdate("truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        """A string as Yjs reads it (TextDecoder with ``fatal: true``): only valid UTF-8 is taken."""
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BrokenText() from exc

    def id(self) -> ID:
        return ID(self.var_uint(), self.var_uint())

    def done(self) -> None:
        if self.pos != len(self.data):
            raise UnreadableUpdate("trailing bytes")


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def read_update(data: bytes) -> Update:
    """Read ``data`` in full; :class:`UnreadableUpdate`, :class:`BrokenText` or :class:`NotText` if it is not
    an update a text memo can take."""
    reader = _Reader(data)
    structs: list[Struct] = []
    clients: set[int] = set()
    for _ in range(reader.var_uint()):
        count = reader.var_uint()
        client = reader.var_uint()
        clock = reader.var_uint()
        if client in clients:  # Yjs writes each client once; reading a second block, it drops the first
            raise UnreadableUpdate("a client twice")
        clients.add(client)
        for _ in range(count):
            struct = _read_struct(reader, client, clock)
            structs.append(struct)
            clock = struct.end
            if clock > MAX_SAFE_INTEGER:
                raise UnreadableUpdate("clock out of range")
    deletes: list[tuple[int, int, int]] = []
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        for _ in range(reader.var_uint()):
            deletes.append((client, reader.var_uint(), reader.var_uint()))
    reader.done()
    return Update(structs, deletes)


def _read_struct(reader: _Reader, client: int, clock: int) -> Struct:
    info = reader.uint8()
    ref = info & 0x1F
    if ref in (GC_REF, SKIP_REF):
        length = reader.var_uint()
        if length == 0:
            raise UnreadableUpdate("empty struct")
        return Struct(StructKind.GC if ref == GC_REF else StructKind.SKIP, client, clock, length)
    origin = reader.id() if info & ORIGIN else None
    right_origin = reader.id() if info & RIGHT_ORIGIN else None
    parent: str | ID | None = None
    parent_key = None
    if origin is None and right_origin is None:
        parent = reader.var_string() if reader.var_uint() == 1 else reader.id()
        if info & PARENT_SUB:
            parent_key = reader.var_string()
    if ref == DELETED_REF:
        length = reader.var_uint()
        text = None
    elif ref == STRING_REF:
        text = reader.var_string()
        length = utf16_length(text)
    else:
        raise NotText(f"content {ref}")
    if length == 0:
        raise UnreadableUpdate("empty item")
    return Struct(
        StructKind.ITEM,
        client,
        clock,
        length,
        origin=origin,
        right_origin=right_origin,
        parent=parent,
        parent_key=parent_key,
        deleted=ref == DELETED_REF,
        text=text,
    )


def read_state_vector(data: bytes) -> dict[int, int]:
    """A state vector (``varUint(#clients) { varUint(client) varUint(clock) }``) as client -> clock."""
    reader = _Reader(data)
    state = {reader.var_uint(): reader.var_uint() for _ in range(reader.var_uint())}
    reader.done()
    return state


def read_awareness(data: bytes) -> list[tuple[int, int, object]]:
    """A y-protocols awareness update as ``(client, clock, state)`` entries, the state JSON-decoded the way
    ``JSON.parse`` would take it (no NaN or Infinity); :class:`UnreadableUpdate` otherwise."""

    def no_constants(name: str) -> object:
        raise UnreadableUpdate(f"not JSON: {name}")

    reader = _Reader(data)
    entries = []
    try:
        for _ in range(reader.var_uint()):
            client, clock = reader.var_uint(), reader.var_uint()
            entries.append((client, clock, json.loads(reader.var_string(), parse_constant=no_constants)))
    except (BrokenText, json.JSONDecodeError, RecursionError) as exc:
        raise UnreadableUpdate("not an awareness update") from exc
    reader.done()
    return entries
