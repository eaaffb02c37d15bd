"""共有メモ against the real other side: Yjs clients in Node (npm yjs + y-protocols, the browser's own
memo-sync.js; tests/harness/yjs.py) edit one room's memo through the real server, and every client's text,
the stored memo, the live room's memo and memo.txt end equal.

Covered: emoji next to emoji (backspace the first of 😀😁, type 👍 right before 😀), ZWJ sequences, flags and
skin tones, combining marks, Japanese typed through an IME (the reading, then its conversion), seeded random
edits from three clients (two tabs share the host's seat) with clean and abrupt drops, a server restart on
the same database and port, a late joiner, pastes larger than a frame (online, and offline then
reconnecting), and updates crafted the way the memo's old diff or a hostile client sent them.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from core.clock import ManualClock
from signaling.rooms import memo_text
from store.models import Role as UserRole
from tests.harness.live import LiveServer
from tests.harness.yjs import ROOT, YjsClient, node
from tests.helpers import seed_org
from tests.joining import Browser
from web.app import create_app
from web.services import services
from web.settings import Settings

T = TypeVar("T")
SEED = 20261130
PIECES = [
    "a", "xyz", " ", "\n", "😀", "😁", "👍", "🎉😀", "👍🏽", "🇯🇵", "👨‍👩‍👧", "👩🏻‍💻",  # astral, ZWJ, flags
    "e\u0301", "か\u3099", "\u0308", "한국어",  # combining marks, Hangul
    "見積もり", "ご予算", "来週", "あ", "ー",
]  # fmt: skip
IME = [("きょう", "今日"), ("みつもり", "見積もり"), ("らいしゅう", "来週"), ("えがお", "😊")]


@dataclass
class Meeting:
    server: LiveServer
    room_id: str
    host: Browser
    guest: Browser
    settings: Settings
    clock: ManualClock

    def cookie(self, browser: Browser) -> str:
        return "; ".join(f"{name}={value}" for name, value in browser.http.cookies.items())

    async def client(self, name: str, role: str) -> YjsClient:
        browser = self.host if role == "host" else self.guest
        return await YjsClient.start(name, self.server.url, self.room_id, self.cookie(browser), role)

    async def on_server(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's own loop (its engine and rooms live there), without blocking ours."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.server.loop))

    async def live_text(self) -> str | None:
        async def read() -> str | None:
            room = services(self.server.app).hub.room(self.room_id)
            return None if room is None else room.memo.text()

        return await self.on_server(read())

    async def stored_text(self) -> str:
        async def read() -> str:
            await services(self.server.app).hub.flush()
            async with services(self.server.app).sessions() as db:
                return await memo_text(db, self.room_id)

        return await self.on_server(read())

    async def memo_txt(self) -> str:
        response = await self.host.http.get(f"/rooms/{self.room_id}/memo.txt")
        assert response.status_code == 200
        assert response.content.startswith(b"\xef\xbb\xbf")
        return response.content[3:].decode("utf-8").replace("\r\n", "\n")

    async def restart(self) -> None:
        """Stop the server and start a new one on the same database and port."""
        port = self.server.port
        await asyncio.to_thread(self.server.stop)
        self.server = LiveServer(create_app(self.settings, clock=self.clock), port=port)
        await asyncio.to_thread(self.server.start)


@pytest.fixture
async def meeting(live_server: LiveServer, settings: Settings, clock: ManualClock) -> AsyncIterator[Meeting]:
    live_server.call(seed_org(live_server.app, "acme", {"host@acme.example": UserRole.HOST}))
    host, guest = Browser(live_server.url), Browser(live_server.url)
    await host.sign_in("host@acme.example")
    await guest.open("/")
    number = (await guest.post_json("/api/numbers")).json()["number"]
    room_id = (await host.post_json("/api/rooms", {"number": number})).json()["room_id"]
    meeting = Meeting(live_server, room_id, host, guest, settings, clock)
    try:
        yield meeting
    finally:
        await host.aclose()
        await guest.aclose()
        if meeting.server is not live_server:
            await asyncio.to_thread(meeting.server.stop)


def short(text: str | None) -> str:
    return repr(text) if text is None or len(text) < 120 else f"{text[:60]!r}…({len(text)} characters)"


async def settled(
    meeting: Meeting, clients: list[YjsClient], within: float = 30.0, offline_too: bool = True
) -> str:
    """Wait (bounded) until every online client is in step and shows the live memo's text; returns that
    text. With ``offline_too``, clients that are offline must hold the same text too."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        states = {client.name: await client.state() for client in clients}
        live = await meeting.live_text()
        for name, state in states.items():
            assert state.exceptions == [], f"{name}'s Yjs could not take a frame: {state.exceptions}"
        if not offline_too and not any(state.online for state in states.values()):
            return live or ""  # nobody to be in step; with nobody connected the room may not even be open
        texts = {state.text for state in states.values() if offline_too or state.online}
        if texts == {live} and all(state.synced for state in states.values() if state.online):
            assert live is not None
            return live
        if asyncio.get_running_loop().time() > deadline:
            detail = {
                name: (state.synced, state.online, state.closes, short(state.text))
                for name, state in states.items()
            }
            raise AssertionError(f"the memos did not settle: live {short(live)}, clients {detail}")
        await asyncio.sleep(0.05)


async def told_replaced(client: YjsClient, within: float = 10.0) -> None:
    """Wait (bounded) until ``client``, whose seat another tab took, has had the server's close."""
    deadline = asyncio.get_running_loop().time() + within
    while (state := await client.state()).online:
        assert asyncio.get_running_loop().time() < deadline, f"{client.name} was not told: {state.closes}"
        await asyncio.sleep(0.05)


async def all_equal(meeting: Meeting, clients: list[YjsClient]) -> str:
    """Every client's text == the live memo == the stored memo == memo.txt."""
    text = await settled(meeting, clients)
    assert await meeting.stored_text() == text
    assert await meeting.memo_txt() == text
    return text


def test_without_node_the_suite_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="node is not installed"):
        node()


def test_the_diff_and_the_pieces_in_node() -> None:
    """memo-sync.js's diff never cuts a pair; splitUpdate's pieces fit a frame and integrate one by one."""
    units = ROOT / "tests/interop/memo_units.mjs"
    result = subprocess.run([node(), str(units)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


async def test_yjs_clients_converge_through_the_real_server(meeting: Meeting) -> None:
    host = await meeting.client("host", "host")
    guest = await meeting.client("guest", "guest")
    tab = await meeting.client("host's second tab", "host")  # offline until it takes the host's seat
    clients = [host, guest, tab]
    try:
        await host.connect()
        await guest.connect()

        # Emoji next to emoji: each side removes or adds whole characters.
        await host.op(0, insert="😀😁")
        assert await settled(meeting, clients[:2]) == "😀😁"
        await guest.op(0, remove=1)  # backspace the first of 😀😁
        assert await settled(meeting, clients[:2]) == "😁"
        await host.op(0, insert="😀")
        assert await settled(meeting, clients[:2]) == "😀😁"
        await guest.op(0, insert="👍")  # right before 😀
        await host.op(99, insert="🎉")  # at the end, at the same time
        assert await settled(meeting, clients[:2]) == "👍😀😁🎉"

        # ZWJ sequences, flags and skin tones; a code point taken out of the middle of a sequence.
        await guest.op(4, insert="\n👨‍👩‍👧 🇯🇵 👍🏽")
        await settled(meeting, clients[:2])
        await host.op(7, remove=1)  # the 👩 of 👨‍👩‍👧
        assert await settled(meeting, clients[:2]) == "👍😀😁🎉\n👨\u200d\u200d👧 🇯🇵 👍🏽"

        # Combining marks: remove one, add one on top of another letter.
        await host.op(99, insert="\ne\u0301 か\u3099")
        acute = list(await settled(meeting, clients[:2])).index("\u0301")
        await guest.op(acute, remove=1)
        await host.op(acute, insert="\u0308")
        assert (await settled(meeting, clients[:2])).endswith("\ne\u0308 か\u3099")

        # Japanese through an IME on one side while the other types at the start.
        await host.ime(99, "\nきょうは", "\n今日は")
        await guest.op(0, insert="【")
        text = await settled(meeting, clients[:2])
        assert text.startswith("【👍😀😁🎉") and text.endswith("\n今日は") and "きょう" not in text

        # Seeded random edits from three clients, drops, a restart halfway, edits while the server is away.
        rng = random.Random(SEED)
        for step in range(160):
            if step == 80:
                await meeting.restart()
                for client in clients:
                    await client.op(rng.randint(0, 40), insert=rng.choice(PIECES))  # while it is away
            client = rng.choice(clients)
            roll = rng.random()
            if roll < 0.5:
                await client.op(rng.randint(0, 80), insert="".join(rng.choices(PIECES, k=rng.randint(1, 3))))
            elif roll < 0.75:
                await client.op(rng.randint(0, 80), remove=rng.randint(1, 3))
            elif roll < 0.82:
                reading, result = rng.choice(IME)
                await client.ime(rng.randint(0, 80), reading, result)
            elif roll < 0.95:
                state = await client.state()
                if state.online:
                    await client.drop(abrupt=rng.random() < 0.5)
                else:
                    await client.connect()  # a host tab takes the seat from the other one
            else:
                await settled(meeting, clients, offline_too=False)

        # Everybody back: each host tab takes the seat in turn (and brings what it typed while away), then
        # the other has it all too; then a late joiner. First every connection under way lands (two tabs
        # opening at once: the one whose socket the server takes last holds the seat, whichever asked first);
        # a tab takes its seat back only once it has been told it lost it, as a person can only click after
        # the page says so.
        await settled(meeting, clients, offline_too=False)
        await guest.connect()
        for client, other in ((tab, host), (host, tab), (tab, host)):
            await client.connect()
            await settled(meeting, [client, guest])
            await told_replaced(other)
        final = await all_equal(meeting, clients)
        late = await meeting.client("late joiner", "guest")  # the guest's reloaded page: an empty Y.Doc
        clients.append(late)
        await late.connect()
        assert await all_equal(meeting, clients) == final
        assert len(final) > 100
        await guest.connect()  # the guest's first page takes its seat back and types
        await guest.op(0, insert="最後に")
        assert (await all_equal(meeting, [tab, guest])).startswith("最後に")
        for client in clients:
            state = await client.state()
            assert [code for code in state.errors if code.startswith("memo")] == [], (
                client.name,
                state.errors,
            )
    finally:
        for client in clients:
            await client.aclose()


async def test_crafted_updates_are_refused_and_change_nothing(meeting: Meeting) -> None:
    host = await meeting.client("host", "host")
    guest = await meeting.client("guest", "guest")
    clients = [host, guest]
    try:
        await host.connect()
        await guest.connect()
        await host.op(0, insert="😀😁 見積もり 😀")
        before = await all_equal(meeting, clients)
        first_id = (await guest.state()).client
        cases = [
            ("craft", "cut_delete", "memo_broken_text"),  # the old diff, backspacing the first of 😀😁
            ("craft", "cut_insert", "memo_broken_text"),  # the old diff, typing 👍 right before 😀
            ("craft", "lone_surrogate", "memo_broken_text"),
            ("craft", "past_clock", "memo_out_of_step"),
            ("craft", "not_text", "memo_not_text"),
            ("awareness", "truncated", "bad_message"),
            ("awareness", "not_json", "bad_message"),
            ("awareness", "other_role", "bad_message"),
        ]
        for op, kind, code in cases:
            count = len((await guest.state()).errors)
            await guest.call(op, kind=kind)
            for _ in range(200):
                errors = (await guest.state()).errors
                if len(errors) > count:
                    break
                await asyncio.sleep(0.02)
            assert errors[count:] == [code], (kind, errors)
            assert await all_equal(meeting, clients) == before, kind
        host_state = await host.state()
        assert host_state.errors == [] and host_state.exceptions == []
        assert all(peer.get("role") == "guest" for peer in (await host.call("peers"))["peers"])
        assert (await guest.state()).client != first_id  # started afresh after its refused edits
        await guest.op(99, insert=" 続き")
        assert await all_equal(meeting, clients) == before + " 続き"
    finally:
        for client in clients:
            await client.aclose()


async def test_pastes_larger_than_a_frame_arrive_whole(meeting: Meeting) -> None:
    host = await meeting.client("host", "host")
    guest = await meeting.client("guest", "guest")
    clients = [host, guest]
    rng = random.Random(SEED)
    online_paste = "".join(rng.choice("あいうえお見積来週😀👍🏽\n") for _ in range(20_000))  # ~65 KB of UTF-8
    offline_paste = "".join(rng.choice("かきくけこ予算🇯🇵e\u0301\n") for _ in range(25_000))
    try:
        await host.connect()
        await guest.connect()
        await host.op(0, insert="始め\n")
        await settled(meeting, clients)
        await host.op(99, insert=online_paste)
        assert await settled(meeting, clients) == "始め\n" + online_paste
        await host.op(0, insert="後で")  # typing afterwards reaches the other side
        assert (await settled(meeting, clients)).startswith("後で始め")
        await guest.drop()
        await guest.op(0, insert=offline_paste)  # while away: its step 2 will be over a frame
        await guest.connect()
        text = await all_equal(meeting, clients)
        assert text == offline_paste + "後で始め\n" + online_paste
        await guest.op(0, insert="さらに")
        assert (await all_equal(meeting, clients)).startswith("さらに")
        for client in clients:
            assert (await client.state()).errors == []
    finally:
        for client in clients:
            await client.aclose()
