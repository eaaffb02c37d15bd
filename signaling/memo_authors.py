"""Who wrote each line of the memo (the 商談記録 shows it), and compaction that keeps knowing.

The memo's log holds one row per update with its author (host or guest) and time. Replaying the rows in order
and watching each one's change to the text (pycrdt's delta) tells, for every character of the final text,
whose update inserted it and when: kept as *runs* — ``[author, at, length]`` over the text, lengths in UTF-8
bytes as pycrdt's deltas count them. Neighbouring runs of one author written within
:data:`GRAIN_SECONDS` of each other are one run (the earliest time), so a long memo has few of them.

Compaction merges a room's rows into one update and stores the runs of the text at that point beside it
(``memo_updates.authors``, JSON); a replay starts from them. Rows merged before runs were kept (or whose runs
do not fit the text) are attributed to ``"merged"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text, TextEvent

from signaling.memo import TEXT_NAME, merged

GRAIN_SECONDS = 60.0
MERGED = "merged"

Run = tuple[str, float, int]  # author, when written (the earliest), UTF-8 bytes


@dataclass(frozen=True)
class LoggedUpdate:
    """One row of the memo's log."""

    update: bytes
    author: str  # "host", "guest", or "merged" for a compacted row
    at: float  # POSIX time it arrived
    authors: str | None = None  # a compacted row's runs (JSON)


@dataclass(frozen=True)
class MemoLine:
    text: str
    authors: tuple[str, ...]  # who wrote its characters, in the order they appear (its newline, if empty)
    at: float | None  # when its earliest character was written (None for an empty last line)


def _coalesce(runs: Iterable[Run]) -> list[Run]:
    out: list[Run] = []
    for author, at, length in runs:
        if length <= 0:
            continue
        if out and out[-1][0] == author and abs(out[-1][1] - at) <= GRAIN_SECONDS:
            previous = out[-1]
            out[-1] = (author, min(previous[1], at), previous[2] + length)
        else:
            out.append((author, at, length))
    return out


def _applied(runs: list[Run], delta: list[dict[str, Any]], author: str, at: float) -> list[Run]:
    """``runs`` after the text changed by ``delta`` (retain / delete / insert, in UTF-8 bytes)."""
    out: list[Run] = []
    index, offset = 0, 0  # the run being read, and how far into it

    def take(count: int, keep: bool) -> None:
        nonlocal index, offset
        while count > 0 and index < len(runs):
            who, when, length = runs[index]
            step = min(count, length - offset)
            if keep:
                out.append((who, when, step))
            offset += step
            count -= step
            if offset == length:
                index, offset = index + 1, 0

    for op in delta:
        if "retain" in op:
            take(int(op["retain"]), keep=True)
        elif "delete" in op:
            take(int(op["delete"]), keep=False)
        elif isinstance(op.get("insert"), str):
            out.append((author, at, len(op["insert"].encode())))
    if index < len(runs):
        who, when, length = runs[index]
        out.append((who, when, length - offset))
        out.extend(runs[index + 1 :])
    return _coalesce(out)


def _stored(authors: str | None, size: int) -> list[Run] | None:
    """A compacted row's runs, if they are readable and cover exactly ``size`` bytes."""
    if authors is None:
        return None
    try:
        runs = [(str(who), float(when), int(length)) for who, when, length in json.loads(authors)]
    except (ValueError, TypeError):
        return None
    return runs if sum(length for _, _, length in runs) == size else None


def replay(rows: Iterable[LoggedUpdate]) -> tuple[str, list[Run]]:
    """The memo's text and its runs, from its log in order. Unreadable rows are skipped (as on opening)."""
    doc: Doc[Any] = Doc()
    doc[TEXT_NAME] = text = Text()
    runs: list[Run] = []
    writer: tuple[str, float] = ("", 0.0)

    def changed(event: TextEvent) -> None:
        nonlocal runs
        runs = _applied(runs, list(event.delta), *writer)  # type: ignore[attr-defined]  # a __slots__ field

    subscription = text.observe(changed)
    try:
        for row in rows:
            writer = (row.author, row.at)
            try:
                doc.apply_update(row.update)
            except ValueError:
                continue
            if row.author == MERGED:
                stored = _stored(row.authors, len(str(text).encode()))
                runs = stored if stored is not None else [(MERGED, row.at, len(str(text).encode()))]
                runs = _coalesce(runs)
    finally:
        text.unobserve(subscription)
    return str(text), runs


def compacted(rows: list[LoggedUpdate]) -> tuple[bytes, str]:
    """The rows as one update, and the runs of its text (to store with it as a ``"merged"`` row)."""
    _, runs = replay(rows)
    return merged([row.update for row in rows]), json.dumps([list(run) for run in runs])


def line_authors(rows: Iterable[LoggedUpdate]) -> list[MemoLine]:
    """Each line of the memo with who wrote it and when, from the memo's log (compacted or not)."""
    text, runs = replay(rows)
    data = text.encode()
    lines: list[MemoLine] = []
    index, run_start = 0, 0  # the first run that may reach the current line, and where it starts
    start = 0
    for raw in data.split(b"\n"):
        end = start + len(raw)
        # An empty line is its newline: whoever pressed Enter there.
        low, high = (start, end) if end > start else (start, min(end + 1, len(data)))
        while index < len(runs) and run_start + runs[index][2] <= low:
            run_start += runs[index][2]
            index += 1
        authors: dict[str, None] = {}
        earliest: float | None = None
        scan, scan_start = index, run_start
        while scan < len(runs) and scan_start < high:
            who, when, length = runs[scan]
            authors.setdefault(who, None)
            earliest = when if earliest is None else min(earliest, when)
            scan_start += length
            scan += 1
        lines.append(MemoLine(raw.decode(), tuple(authors), earliest))
        start = end + 1
    return lines
