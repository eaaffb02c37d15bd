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
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter
from typing import Any, NamedTuple

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
    for run in runs:
        _push(out, run)
    return out


def _push(out: list[Run], run: Run) -> None:
    """Append ``run``, as part of the last run if it is the same author's, written within the grain."""
    author, at, length = run
    if length <= 0:
        return
    if out and out[-1][0] == author and abs(out[-1][1] - at) <= GRAIN_SECONDS:
        previous = out[-1]
        out[-1] = (author, min(previous[1], at), previous[2] + length)
    else:
        out.append(run)


def _applied(runs: list[Run], delta: list[dict[str, Any]], author: str, at: float) -> list[Run]:
    """``runs`` after the text changed by ``delta`` (retain / delete / insert, in UTF-8 bytes).

    A keystroke retains nearly all of a long memo: the runs it keeps are found by bisection and copied as
    slices, so a change costs a few Python steps whatever the number of runs."""
    ends = list(accumulate(map(itemgetter(2), runs)))
    out: list[Run] = []
    position = 0  # in the old text

    def keep(until: int) -> None:
        """Copy the old text's runs from ``position`` up to ``until``."""
        first = bisect_right(ends, position)
        last = bisect_left(ends, until)
        if until <= position or first >= len(runs):
            return
        if first == last:
            _push(out, (runs[first][0], runs[first][1], until - position))
            return
        _push(out, (runs[first][0], runs[first][1], ends[first] - position))
        out.extend(runs[first + 1 : last])
        if last < len(runs):
            _push(out, (runs[last][0], runs[last][1], until - ends[last - 1]))

    for op in delta:
        if "retain" in op:
            keep(position + int(op["retain"]))
            position += int(op["retain"])
        elif "delete" in op:
            position += int(op["delete"])
        elif isinstance(op.get("insert"), str):
            _push(out, (author, at, len(op["insert"].encode())))
    keep(ends[-1] if ends else 0)
    return out


def _stored(authors: str | None, size: int) -> list[Run] | None:
    """A compacted row's runs, if they are readable and cover exactly ``size`` bytes."""
    if authors is None:
        return None
    try:
        runs = [(str(who), float(when), int(length)) for who, when, length in json.loads(authors)]
    except (ValueError, TypeError):
        return None
    return runs if sum(length for _, _, length in runs) == size else None


def _batches(rows: Iterable[LoggedUpdate]) -> Iterable[list[LoggedUpdate]]:
    """The rows in order, as batches of one author's rows within :data:`GRAIN_SECONDS` of the batch's first
    (a compacted row alone): a batch is replayed as one change, attributed to its first row's time."""
    batch: list[LoggedUpdate] = []
    for row in rows:
        if batch and (
            row.author == MERGED or row.author != batch[0].author or row.at - batch[0].at > GRAIN_SECONDS
        ):
            yield batch
            batch = []
        batch.append(row)
        if row.author == MERGED:
            yield batch
            batch = []
    if batch:
        yield batch


def replay(rows: Iterable[LoggedUpdate]) -> tuple[str, list[Run]]:
    """The memo's text and its runs, from its log in order. Unreadable rows are skipped (as on opening).

    pycrdt reports a change in a few tens of µs, more than applying a keystroke costs; replaying a batch of
    one author's keystrokes as one transaction keeps compaction cheap."""
    doc: Doc[Any] = Doc()
    doc[TEXT_NAME] = text = Text()
    runs: list[Run] = []
    writer: tuple[str, float] = ("", 0.0)

    def changed(event: TextEvent) -> None:
        nonlocal runs
        runs = _applied(runs, list(event.delta), *writer)  # type: ignore[attr-defined]  # a __slots__ field

    subscription = text.observe(changed)
    try:
        for batch in _batches(rows):
            first = batch[0]
            writer = (first.author, first.at)
            with doc.transaction():
                for row in batch:
                    try:
                        doc.apply_update(row.update)
                    except ValueError:
                        continue
            if first.author == MERGED:
                size = len(str(text).encode())
                stored = _stored(first.authors, size)
                runs = _coalesce(stored if stored is not None else [(MERGED, first.at, size)])
    finally:
        text.unobserve(subscription)
    return str(text), runs


class Compacted(NamedTuple):
    """A room's log as one row: the merged update, the runs of its text (to store with it as a ``"merged"``
    row) and the text itself (for the meeting record's copy, read while replaying rather than rebuilt)."""

    update: bytes
    authors: str
    text: str


def compacted(rows: list[LoggedUpdate]) -> Compacted:
    """The rows as one update, with the runs of its text and the text."""
    text, runs = replay(rows)
    return Compacted(merged([row.update for row in rows]), json.dumps([list(run) for run in runs]), text)


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
