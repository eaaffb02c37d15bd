"""共有メモ: the quick lane (signaling/memo_quick.py) takes only what the full checks take, noting the same.

Each update is offered to both on copies of the same bookkeeping: whenever the quick lane takes an update,
the full checks must take it too and leave the same clocks, surrogate halves and deletions; the quick lane
must take nearly every ordinary keystroke (else it saves nothing); and whatever it declines, refusals
included, is the full checks' to decide. Updates: two pycrdt clients typing Japanese, emoji, ASCII and
deleting (what browsers send, one transaction each), the crafted broken ones, and random mutations of both.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text
from starlette.applications import Starlette

from signaling.hub import RoomHub
from signaling.memo import (
    UPDATE,
    BadMemoData,
    MemoRefused,
    SharedMemo,
    _second_halves,
    merged,
    parse_sync_message,
    sync_message,
)
from signaling.memo_quick import quick_take
from signaling.protocol import End, MemoSync, Role
from signaling.yjs_update import read_update
from store.models import Role as UserRole
from tests.helpers import open_room, seed_org
from tests.test_memo import Client, rows
from tests.test_memo_refusals import YJS, deletion, string_item
from web.services import services

PIECES = ["あ", "い", "見積", "😀", "👍🏽", "a", "b", " ", "\n", "e\u0301", "😀x😁"]


def keystrokes(count: int, seed: int) -> list[bytes]:
    """Two participants typing, deleting and typing over selections, each seeing the other's edits; one
    transaction's update per keystroke, as a browser sends it."""
    rng = random.Random(seed)
    docs: dict[str, Doc[Any]] = {}
    texts: dict[str, Text] = {}
    made: list[bytes] = []
    for number, who in enumerate(("host", "guest")):
        docs[who] = Doc(client_id=rng.randrange(2**32) + number)  # fixed ids: the same bytes every run
        docs[who]["memo"] = texts[who] = Text()
        docs[who].observe(lambda event: made.append(event.update))
    out: list[bytes] = []
    for i in range(count):
        who = "host" if (i // 7) % 2 == 0 else "guest"
        text = texts[who]
        current = str(text)
        at = rng.randint(0, len(current))
        with docs[who].transaction():
            if current and rng.random() < 0.2:  # backspace, or a selection typed over
                gone = min(len(current) - max(0, at - 1), rng.choice([1, 1, 3]))
                start = len(current[: max(0, at - 1)].encode())
                del text[start : start + len(current[max(0, at - 1) : max(0, at - 1) + gone].encode())]
                current = str(text)
                at = min(at, len(current))
            if rng.random() < 0.9:
                text.insert(len(current[:at].encode()), rng.choice(PIECES))
        if not made:
            continue
        update = made.pop()
        made.clear()
        docs["guest" if who == "host" else "host"].apply_update(update)
        made.clear()  # the other side's own event for what it just applied
        out.append(update)
    return out


def offer(memo: SharedMemo, update: bytes) -> bool:
    """Offer ``update`` to the quick lane and to the full checks on copies of ``memo``'s bookkeeping; assert
    the quick lane only takes what the full checks take, noting the same. Returns whether it took it."""
    clocks, halves, seen = dict(memo._clocks), copy.deepcopy(memo._halves), set(memo._deletions)
    before = (copy.deepcopy(clocks), copy.deepcopy(halves), copy.deepcopy(seen))
    took = quick_take(update, clocks, halves, seen)
    try:
        new_halves, new_deletions, known = memo._check(update)
    except (MemoRefused, BadMemoData):
        assert not took, f"the quick lane took an update the full checks refuse: {update.hex()}"
        assert (clocks, halves, seen) == before, "declining changed the bookkeeping"
        return False
    if not took:
        assert (clocks, halves, seen) == before, "declining changed the bookkeeping"
        return False
    expected_halves = copy.deepcopy(memo._halves)
    for client, found in new_halves.items():
        expected_halves.setdefault(client, set()).update(found)
    assert clocks == known
    assert {c: h for c, h in halves.items() if h} == {c: h for c, h in expected_halves.items() if h}
    assert seen == memo._deletions | set(new_deletions)
    return True


def test_ordinary_keystrokes_are_taken_quickly_and_noted_as_the_full_checks_note_them() -> None:
    memo = SharedMemo()
    taken = 0
    updates = keystrokes(600, seed=11)
    for update in updates:
        taken += offer(memo, update)
        memo.receive(sync_message(UPDATE, update))
    assert taken / len(updates) > 0.9, f"the quick lane took only {taken} of {len(updates)} keystrokes"
    # What it took is applied (in batches) and reads back the same as a document fed every update at once.
    reference: Doc[Any] = Doc()
    reference["memo"] = Text()
    for update in updates:
        reference.apply_update(update)
    assert memo.text() == str(reference["memo"]) and memo.pending == 0


def test_the_crafted_broken_updates_are_left_to_the_full_checks() -> None:
    memo = SharedMemo()
    for name in ("two_emoji", "one_emoji"):
        memo.receive(sync_message(UPDATE, bytes.fromhex(YJS[name])))
    for update in [
        bytes.fromhex(YJS["backspace_first"]),  # cuts 😀 in two
        bytes.fromhex(YJS["thumbs_up_before"]),  # lone surrogates as U+FFFD... written before 😀's half
        string_item(2, 2, b"\xed\xa0\xbd", origin=(2, 1)),  # a lone surrogate in UTF-8
        string_item(2, 2, b"x", origin=(2, 0)),  # right after the first half of 😀
        string_item(2, 5, b"x", origin=(2, 1)),  # past the sender's clock
        string_item(3, 0, b"x", origin=(9, 0)),  # an origin nobody has
        deletion(1, 1, 1),  # from the middle of 😀
        deletion(2, 0, 9),  # more than there is
    ]:
        assert not offer(memo, update)


def test_an_update_typed_before_the_others_arrive_is_left_to_the_full_checks() -> None:
    """A partly known update (a client resending from an older clock) and a first keystroke in an empty memo
    (no neighbours: its parent is checked) are the full checks' to take."""
    memo = SharedMemo()
    first = string_item(5, 0, b"ab")
    assert not offer(memo, first)
    memo.receive(sync_message(UPDATE, first))
    assert offer(memo, string_item(5, 2, "見".encode(), origin=(5, 1)))
    memo.receive(sync_message(UPDATE, string_item(5, 2, "見".encode(), origin=(5, 1))))
    assert not offer(memo, string_item(5, 2, "見積".encode(), origin=(5, 1)))  # from clock 2 again


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_updates_are_never_taken_unless_the_full_checks_take_them(data: st.DataObject) -> None:
    updates = keystrokes(60, seed=data.draw(st.integers(0, 5)))
    memo = SharedMemo()
    upto = data.draw(st.integers(0, len(updates) - 1))
    for update in updates[:upto]:
        memo.receive(sync_message(UPDATE, update))
    original = bytearray(updates[upto])
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(original)))
        match data.draw(st.sampled_from(["flip", "insert", "delete"])):
            case "flip" if where < len(original):
                original[where] = data.draw(st.integers(0, 255))
            case "insert":
                original[where:where] = bytes([data.draw(st.integers(0, 255))])
            case "delete" if where < len(original):
                del original[where]
    offer(memo, bytes(original))


def test_a_stored_memo_notes_its_surrogate_pairs_as_reading_every_item_does() -> None:
    """Opening a room reads a stored update item by item only when it holds a character past U+FFFF (its
    UTF-8 has the 4-byte pattern): what it notes must be what reading every update notes, row by row and
    merged, with emoji and without."""

    def read_in_full(updates: list[bytes]) -> dict[int, set[int]]:
        found: dict[int, set[int]] = {}
        for update in updates:
            for struct in read_update(update).structs:
                _second_halves(struct, found)
        return {client: clocks for client, clocks in found.items() if clocks}

    with_emoji = keystrokes(300, seed=5)
    plain = [u for u in keystrokes(300, seed=6) if "😀".encode()[:1] not in u][:100]
    for updates in (with_emoji, [merged(with_emoji)], plain, [merged(plain)]):
        noted = {client: clocks for client, clocks in SharedMemo(updates)._halves.items() if clocks}
        assert noted == read_in_full(updates)
    assert read_in_full(with_emoji), "the keystrokes had no emoji: the test would hold whatever opening did"


# The fast path through the hub: in the socket's task, in order, nothing refused relayed, everything stored


async def test_keystrokes_from_both_sides_at_once_are_relayed_and_stored_in_order(app: Starlette) -> None:
    """Host and guest type together (a barrier, not turns); one crafted update the checks refuse is in the
    middle of the host's. Each side receives the other's updates in the order they were sent and never the
    refused one; the stored log is exactly the updates relayed, in each sender's order; the memos converge."""
    room_id, _ = await open_room(app, await seed_org(app, "acme", {"host@acme.example": UserRole.HOST}))
    hub: RoomHub = services(app).hub
    clients = {Role.HOST: Client(), Role.GUEST: Client()}
    typed: dict[Role, list[bytes]] = {Role.HOST: [], Role.GUEST: []}
    refused = sync_message(UPDATE, string_item(7, 5, b"x", origin=(7, 1)))  # past client 7's clock
    async with hub.participate(room_id, Role.HOST) as host, hub.participate(room_id, Role.GUEST) as guest:
        seats = {Role.HOST: host, Role.GUEST: guest}
        for role, seat in seats.items():  # each client's first keystroke (no neighbour: the full checks)
            frame = clients[role].edit(0, "あ" if role == Role.HOST else "a")
            typed[role].append(parse_sync_message(base64.b64decode(frame.data))[1])
            await seat.send(frame)
        await hub.settle(room_id)
        inline_before = hub.handled_inline
        start = asyncio.Barrier(2)

        async def type_(role: Role) -> None:
            client = clients[role]
            await start.wait()
            for i in range(60):
                if role == Role.HOST and i == 30:
                    await seats[role].send(
                        MemoSync(type="memo.sync", data=base64.b64encode(refused).decode())
                    )
                frame = client.edit(len(str(client.text)), "見積😀"[i % 3])
                typed[role].append(parse_sync_message(base64.b64decode(frame.data))[1])
                await seats[role].send(frame)

        async def receive(role: Role) -> tuple[list[bytes], list[str]]:
            """What ``role``'s socket is given of the other's updates, until all of them came; error codes."""
            got: list[bytes] = []
            errors: list[str] = []
            other = Role.GUEST if role == Role.HOST else Role.HOST
            outgoing = seats[role].outgoing()
            iterator = outgoing.__aiter__()
            for _ in range(500):
                if len(got) == 61 and got == typed[other] and (errors or role == Role.GUEST):
                    break
                item = await asyncio.wait_for(iterator.__anext__(), 5.0)
                message = item.message
                assert message is not None and item.close is None
                if message["type"] == "error":
                    errors.append(message["code"])
                elif message["type"] == "memo.sync":
                    kind, payload = parse_sync_message(base64.b64decode(message["data"]))
                    if kind == UPDATE:  # (the refused one's sender is also sent the server's step 1)
                        got.append(payload)
            await outgoing.aclose()  # type: ignore[attr-defined]
            return got, errors

        receivers = [asyncio.create_task(receive(role)) for role in seats]
        await asyncio.gather(type_(Role.HOST), type_(Role.GUEST))
        (to_host, host_errors), (to_guest, guest_errors) = await asyncio.gather(*receivers)
        assert to_host == typed[Role.GUEST] and to_guest == typed[Role.HOST]  # in order, all, nothing refused
        assert len(host_errors) == 1 and not guest_errors  # the refused update's sender was told
        assert hub.handled_inline - inline_before >= 100, "the keystrokes did not take the fast path"
        await hub.settle(room_id)
        stored = await rows(app, room_id)
        by_author = {role: [r.update for r in stored if r.author == role.value] for role in seats}
        assert by_author == typed
        room = hub.room(room_id)
        assert room is not None
        for client in clients.values():
            client.doc.apply_update(room.memo.state_update())
        assert str(clients[Role.HOST].text) == str(clients[Role.GUEST].text) == room.memo.text()
        # Ended, not left open: with both seats taken, a room left open keeps the app's teardown waiting.
        await host.send(End(type="end"))
        await hub.settle(room_id)
