"""共有メモ's length cap, kept apart from the memo's sync so that each can change on its own.

A Yjs update carries inserted text as UTF-8 strings, so it can add at most as many characters as it has
bytes. While the memo's length plus the update's size stays within the cap, nothing needs to be computed;
only near the cap is the update tried on a copy of the memo to see the length it would leave. A refused
update is not applied, stored or passed on (the room answers ``memo_full``).
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from signaling.memo import STEP1, TEXT_NAME, SharedMemo

DEFAULT_MAX_CHARACTERS = 100_000


def fits(memo: SharedMemo, kind: int, payload: bytes, max_characters: int) -> bool:
    """Whether the memo stays within ``max_characters`` once the sync message of ``kind`` with ``payload``
    (as ``parse_sync_message`` reads it) is applied. A payload pycrdt cannot read is let through: the memo's
    own validation refuses it."""
    if kind == STEP1 or memo.length_at_most() + len(payload) <= max_characters:
        return True  # without applying the memo's pending updates (its fast path applies them in batches)
    length = len(memo.text())
    trial: Doc[Any] = Doc()
    trial[TEXT_NAME] = text = Text()
    try:
        trial.apply_update(memo.doc.get_update())
        trial.apply_update(payload)
    except BaseException as exc:  # pycrdt: ValueError, or a Rust panic (a BaseException) on bad data
        if isinstance(exc, ValueError) or type(exc).__name__ == "PanicException":
            return True
        raise
    return len(str(text)) <= max(max_characters, length)  # never refuse what does not make it longer
