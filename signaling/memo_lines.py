"""Who wrote each line of the shared memo, and when: the memo as the meeting record shows it.

A line is attributed to the author of the stored update that first made that exact line appear, at that
update's time: the edit that gave the line its final text (typing 「お見積」 character by character, the line
gets the last keystroke's author and time). Pure computation over stored ``(update, author, time)`` rows,
replayed into a fresh document.

Compaction merges stored updates into one row (author ``merged``) and would lose this, so the lines known at
each compaction are kept in the record (``memo_lines``, JSON) and carried over: a line still there with the
same text keeps its author and time. Lines of a merged row that were never attributed stay anonymous rather
than being credited to whoever typed next.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from core.clock import utc
from signaling.memo import SharedMemo

MERGED = "merged"


@dataclass(frozen=True)
class MemoLine:
    text: str
    author: str  # "host", "guest", or "" when unknown
    at: str  # ISO 8601 UTC, or "" when unknown


def attribute(
    updates: Sequence[tuple[bytes, str, datetime]], known: Sequence[MemoLine] = ()
) -> list[MemoLine]:
    """The memo's lines after applying ``updates`` in order, each with its author and time."""
    memo = SharedMemo()
    carried = {line.text: line for line in known if line.author}
    owner: dict[str, MemoLine] = {}
    for update, author, at in updates:
        try:
            memo.doc.apply_update(update)
        except ValueError:
            continue  # a stored row that cannot be read (SharedMemo skips it the same way)
        for line in memo.text().split("\n"):
            if line not in owner:
                if author == MERGED:
                    owner[line] = carried.get(line, MemoLine(line, "", ""))
                else:
                    owner[line] = MemoLine(line, author, utc(at).isoformat())
    return [owner.get(line, MemoLine(line, "", "")) for line in memo.text().split("\n")]


def dump(lines: Sequence[MemoLine]) -> str:
    return json.dumps([asdict(line) for line in lines], ensure_ascii=False)


def load(stored: str) -> list[MemoLine]:
    """The lines kept in a record; [] for none or for anything unreadable (never fails a page)."""
    try:
        data = json.loads(stored) if stored else []
        return [MemoLine(str(item["text"]), str(item["author"]), str(item["at"])) for item in data]
    except (ValueError, TypeError, KeyError):
        return []
