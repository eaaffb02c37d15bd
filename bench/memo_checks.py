"""共有メモ: what reading each update before applying it (signaling/memo.py) and keeping authorship through
compaction (signaling/memo_authors.py) cost, against pycrdt alone in the same run.

Keystrokes: 4,000 real Yjs updates (pycrdt, two participants taking turns, Japanese, emoji and ASCII, some
deletions; each one transaction's update, as a browser sends them) applied in order: ``SharedMemo.receive``
(read, check, apply) against what it did before the checks (parse the sync message, ``Doc.apply_update``).
A paste: one ~45 KB update (about what one frame carries). Compaction: 200 rows merged (what compaction did
before) against merged plus the authorship replay (what it does now), on a memo that already holds 4,000
keystrokes. Opening: a room's memo read from its log compacted into one update (what the room's checks
keep, with emoji and without) against its text alone (what the meeting record stores; pycrdt applying it).
Figures are CPU µs, the best of ``--rounds`` interleaved rounds.

The hot path's yardstick, in the same run: what the socket edge does with every memo frame anyway — read and
validate the JSON frame (``parse_client_message``) and serialise the frame forwarded to the other side
(``frame_us_per_keystroke``). The server spends some 430–600 µs of CPU per keystroke in all (bench.memo).

Targets: ``check_to_frame_ratio`` ≤ 4 — the edge's handling is a small part of a keystroke's cost, so four
times it stays under a tenth of the whole — and ``compact_to_merge_ratio`` ≤ 8 (compaction runs once per
200 rows, in the writer).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Text

from signaling.memo import UPDATE, SharedMemo, encode, merged, parse_sync_message, sync_message, text_of
from signaling.memo_authors import LoggedUpdate, compacted
from signaling.protocol import MemoSyncOut, parse_client_message

PIECES = ["あ", "い", "見積", "😀", "👍🏽", "a", "b", " ", "\n", "e\u0301"]


def keystrokes(count: int, seed: int, pieces: list[str] = PIECES) -> list[tuple[str, bytes]]:
    """``count`` updates from two participants typing and deleting, each seeing the other's edits. Each is
    one transaction's update, as a browser's Yjs sends it (its own deletions only)."""
    rng = random.Random(seed)
    docs: dict[str, Doc[Any]] = {}
    texts: dict[str, Text] = {}
    made: list[bytes] = []
    for who in ("host", "guest"):
        docs[who] = Doc()
        docs[who]["memo"] = texts[who] = Text()
        docs[who].observe(lambda event: made.append(event.update))
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        who = "host" if (i // 20) % 2 == 0 else "guest"  # turns of 20 keystrokes
        text = texts[who]
        current = str(text)
        if current and rng.random() < 0.15:
            end = len(current.encode())
            start = len(current[:-1].encode())
            del text[start:end]
        else:
            text += rng.choice(pieces)
        update = made.pop()
        docs["guest" if who == "host" else "host"].apply_update(update)
        made.clear()  # the other side's own event for what it just applied
        out.append((who, update))
    return out


def per_item_us(run: Callable[[], int]) -> float:
    start = time.process_time()
    items = run()
    return (time.process_time() - start) / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keystrokes", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    updates = keystrokes(args.keystrokes, seed=7)
    messages = [sync_message(UPDATE, update) for _, update in updates]

    def unchecked() -> int:
        doc: Doc[Any] = Doc()
        doc["memo"] = Text()
        for message in messages:
            doc.apply_update(parse_sync_message(message)[1])
        return len(messages)

    frames = [json.dumps({"type": "memo.sync", "data": encode(message)}) for message in messages]

    def edge() -> int:
        for frame in frames:
            parsed = parse_client_message(frame)
            json.dumps(MemoSyncOut(data=parsed.data).model_dump(mode="json"))  # type: ignore[union-attr]
        return len(frames)

    def checked() -> int:
        memo = SharedMemo()
        for message in messages:
            memo.receive(message)
        return len(messages)

    paste_doc: Doc[Any] = Doc()
    paste_doc["memo"] = paste_text = Text()
    paste_text += "".join(random.Random(3).choice("あいうえお見積😀\n") for _ in range(15_000))
    paste = paste_doc.get_update()
    paste_message = sync_message(UPDATE, paste)

    def paste_apply() -> int:
        for _ in range(20):
            doc: Doc[Any] = Doc()
            doc["memo"] = Text()
            doc.apply_update(paste)
        return 20

    def paste_checked() -> int:
        for _ in range(20):
            SharedMemo().receive(paste_message)
        return 20

    history = [LoggedUpdate(update, who, float(i)) for i, (who, update) in enumerate(updates)]
    base, authors, _ = compacted(history[:-200])
    rows = [LoggedUpdate(base, "merged", 0.0, authors), *history[-200:]]

    def merge_only() -> int:
        merged([row.update for row in rows])
        return 1

    def merge_and_authors() -> int:
        compacted(rows)
        return 1

    # Opening a room reads its stored log into a SharedMemo (the checks' bookkeeping) and the meeting
    # record's copy of a memo is its text alone (text_of): a compacted memo of all the keystrokes, with emoji
    # and without (a stored update with no character past U+FFFF is not read item by item).
    whole = merged([update for _, update in updates])
    plain = merged([u for _, u in keystrokes(args.keystrokes, 7, [p for p in PIECES if p < "\U00010000"])])

    def open_memo() -> int:
        for _ in range(5):
            SharedMemo([whole])
        return 5

    def open_plain_memo() -> int:
        for _ in range(5):
            SharedMemo([plain])
        return 5

    def memo_text() -> int:
        for _ in range(5):
            text_of([whole])
        return 5

    figures: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved, so both sides see the same machine
        for name, run in (
            ("frame_us_per_keystroke", edge),
            ("unchecked_us_per_update", unchecked),
            ("checked_us_per_update", checked),
            ("paste_apply_us", paste_apply),
            ("paste_checked_us", paste_checked),
            ("merge_us_per_compaction", merge_only),
            ("compact_us_per_compaction", merge_and_authors),
            ("open_us_per_memo", open_memo),
            ("open_us_per_memo_without_emoji", open_plain_memo),
            ("text_us_per_memo", memo_text),
        ):
            figures.setdefault(name, []).append(per_item_us(run))
    best = {name: min(values) for name, values in figures.items()}
    print(f"# {args.keystrokes} keystrokes, {len(paste)} byte paste, best of {args.rounds} rounds (CPU time)")
    for name, value in best.items():
        print(f"{name}: {value:.1f}")
    checked_ratio = best["checked_us_per_update"] / best["unchecked_us_per_update"]
    added = best["checked_us_per_update"] - best["unchecked_us_per_update"]
    print(f"check_added_us_per_update: {added:.1f}")
    paste_ratio = best["paste_checked_us"] / best["paste_apply_us"]
    compact_ratio = best["compact_us_per_compaction"] / best["merge_us_per_compaction"]
    print(f"checked_to_unchecked_ratio: {checked_ratio:.2f}")
    print(f"paste_checked_to_apply_ratio: {paste_ratio:.2f}")
    print(f"compact_to_merge_ratio: {compact_ratio:.2f}")
    frame_ratio = added / best["frame_us_per_keystroke"]
    print(f"check_to_frame_ratio: {frame_ratio:.2f}")
    print(f"open_to_text_ratio: {best['open_us_per_memo'] / best['text_us_per_memo']:.2f}")
    print(f"targets_met: {'yes' if frame_ratio <= 4 and compact_ratio <= 8 else 'no'}")


if __name__ == "__main__":
    main()
