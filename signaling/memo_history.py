"""The shared memo as it stood at each moment of a meeting (the replay's memo pane), from its stored log.

Each stored update is applied in order and the text after it kept with its time. A compacted row merged
many updates into one; what its runs say (who wrote which part, when) gives the text as it grew: at each
run's time, the parts written by then, in place (what was typed and deleted before the compaction is not
known any more).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pycrdt import Doc, Text

from signaling.memo import TEXT_NAME
from signaling.memo_authors import MERGED, LoggedUpdate, _stored

MAX_STATES = 5000  # states kept for one meeting (a long meeting's keystrokes, thinned out evenly)


def history(rows: Iterable[LoggedUpdate]) -> list[tuple[float, str]]:
    """(POSIX time, the memo's text from then on), oldest first; a time may repeat, the last one counts."""
    doc: Doc[Any] = Doc()
    doc[TEXT_NAME] = text = Text()
    states: list[tuple[float, str]] = []
    for row in rows:
        try:
            doc.apply_update(row.update)
        except ValueError:
            continue
        now = str(text)
        if row.author == MERGED:
            data = now.encode()
            runs = _stored(row.authors, len(data))
            for moment in sorted({when for _, when, _ in runs or ()}):
                parts, position = [], 0
                for _, when, length in runs or ():
                    if when <= moment:
                        parts.append(data[position : position + length])
                    position += length
                states.append((moment, b"".join(parts).decode(errors="replace")))
        if not states or states[-1][1] != now:
            states.append((row.at, now))
    if len(states) > MAX_STATES:
        step = len(states) / MAX_STATES
        states = [states[int(i * step)] for i in range(MAX_STATES - 1)] + [states[-1]]
    return states
