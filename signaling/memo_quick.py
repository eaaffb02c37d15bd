"""共有メモ: the common keystroke, taken in one pass — or handed to the full checks.

Almost every update a browser sends while someone types is the same small shape: one client, one string
item with a left and/or right neighbour (its origins), and a delete set of a few ranges (a backspace, a
selection typed over). :func:`quick_take` reads exactly that shape straight from the bytes and decides with
a few look-ups in the memo's bookkeeping what :meth:`signaling.memo.SharedMemo._check` decides with the whole
reader: it never refuses anything, it only **takes** an update the full checks would take (and makes the
same notes: the sender's clock, the halves of surrogate pairs, the deletions seen). Anything else — an
unusual shape, a number it does not read, an origin it does not know, an edit next to half a surrogate pair,
a deletion the server has not got — returns ``None`` and the full checks decide, refusal included.

That one-way rule is what keeps it safe: ``tests/test_memo_quick.py`` holds it to the full checks on real
Yjs keystrokes and on crafted and random updates (the quick lane's notes must equal the full checks' notes).
"""

from __future__ import annotations

from signaling.yjs_update import MAX_SAFE_INTEGER

STRING_ITEM = 0x04  # info & 0x1f: string content
ORIGIN, RIGHT_ORIGIN, PARENT_SUB = 0x80, 0x40, 0x20
Halves = dict[int, set[int]]


class _Unusual(Exception):
    """Not the common shape (or not readable here): the full checks decide."""


def _var_uint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]  # IndexError past the end: caught by the caller
    if byte < 0x80:
        return byte, pos + 1
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if value > MAX_SAFE_INTEGER:
                raise _Unusual()
            return value, pos
        if shift > 56:
            raise _Unusual()


def quick_take(
    payload: bytes, clocks: dict[int, int], halves: Halves, seen: set[tuple[int, int, int]]
) -> bool:
    """Take ``payload`` when it is a common keystroke the full checks would take: then ``clocks``, ``halves``
    and ``seen`` are updated as the full checks would update them, and True is returned. Otherwise nothing is
    changed and False is returned (the full checks decide)."""
    try:
        return _take(payload, clocks, halves, seen)
    except (_Unusual, IndexError):
        return False


def _take(payload: bytes, clocks: dict[int, int], halves: Halves, seen: set[tuple[int, int, int]]) -> bool:
    data = payload
    clients, pos = _var_uint(data, 0)
    if clients > 1:
        return False
    client = end = -1
    new_halves: list[int] = []
    if clients == 1:
        structs, pos = _var_uint(data, pos)
        if structs != 1:
            return False
        client, pos = _var_uint(data, pos)
        clock, pos = _var_uint(data, pos)
        if clock != clocks.get(client, 0):
            return False  # past the sender's clock (refused) or partly known (cut): the full checks
        info = data[pos]
        pos += 1
        if info & 0x1F != STRING_ITEM or info & PARENT_SUB or not info & (ORIGIN | RIGHT_ORIGIN):
            return False  # other content, or an item with no neighbour (its parent is checked in full)
        if info & ORIGIN:
            origin_client, pos = _var_uint(data, pos)
            origin_clock, pos = _var_uint(data, pos)
            if origin_clock >= clocks.get(origin_client, 0):
                return False  # an origin the server lacks: Yjs would keep the update pending
            if origin_clock + 1 in halves.get(origin_client, ()):
                return False  # right after the first half of a surrogate pair
        if info & RIGHT_ORIGIN:
            right_client, pos = _var_uint(data, pos)
            right_clock, pos = _var_uint(data, pos)
            if right_clock >= clocks.get(right_client, 0):
                return False
            if right_clock in halves.get(right_client, ()):
                return False  # right before the second half of a surrogate pair
        size, pos = _var_uint(data, pos)
        raw = data[pos : pos + size]
        if len(raw) != size or not size:
            return False
        pos += size
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if text.isascii() or max(text) < "\U00010000":
            length = len(text)
        else:
            length = 0
            for char in text:
                if char > "\uffff":
                    new_halves.append(clock + length + 1)
                    length += 2
                else:
                    length += 1
        end = clock + length
        if end > MAX_SAFE_INTEGER:
            return False
    deletions: list[tuple[int, int, int]] = []
    delete_clients, pos = _var_uint(data, pos)
    for _ in range(delete_clients):
        delete_client, pos = _var_uint(data, pos)
        ranges, pos = _var_uint(data, pos)
        for _ in range(ranges):
            start, pos = _var_uint(data, pos)
            length, pos = _var_uint(data, pos)
            deletion = (delete_client, start, length)
            if deletion in seen:
                continue
            known = end if delete_client == client else clocks.get(delete_client, 0)
            if not length or start + length > known:
                return False
            cut = halves.get(delete_client, ())
            if start in cut or start + length in cut:
                return False
            if delete_client == client and (start in new_halves or start + length in new_halves):
                return False
            deletions.append(deletion)
    if pos != len(data):
        return False
    if client >= 0:
        clocks[client] = end
        if new_halves:
            halves.setdefault(client, set()).update(new_halves)
    seen.update(deletions)
    return True
