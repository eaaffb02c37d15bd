"""The room channel's direct path (web/direct_socket.py, web/room_socket.py, ``Connection.send_directly``):
a keystroke read and its peer's copy written without a task switch, never out of order with what goes the
ordinary way, and a failure in it ends one socket only.

The protocol is driven here with websockets' own client protocol (sans I/O) producing the client's masked
frames and reading the server's, over an in-memory transport; the keystrokes end to end go through the
server as ``tsunagu serve`` runs it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from signaling.hub import RoomHub
from signaling.memo import UPDATE, parse_sync_message
from signaling.protocol import Role
from tests.harness.live import LiveServer
from tests.joining import Browser, receive, receive_type
from tests.test_hub import frame_of, next_item, room_id  # noqa: F401 - fixture
from tests.test_joining import V1, guest, host, issue, server, start  # noqa: F401 - fixtures
from tests.test_memo import Client
from web import direct_socket
from web.direct_socket import DirectProtocol, DirectSocket, text_frame
from web.services import services


class Transport(asyncio.Transport):
    """What the event loop's socket transport does for the protocol, in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Socket:
    """One WebSocket served by :class:`DirectProtocol` to an app that registers ``handler``; the client's
    side is websockets' sans-I/O client."""

    def __init__(self, handler: Callable[[str], bool]) -> None:
        self.handler = handler
        self.through_asgi: list[dict[str, Any]] = []
        self.direct: DirectSocket | None = None
        self.transport = Transport()
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/ws"))
        self.protocol: DirectProtocol | None = None

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        self.direct = direct_socket.direct_socket(scope)
        assert self.direct is not None, "the protocol puts its direct path in the scope"
        self.direct.on_text(self.handler)
        while True:
            event = await receive()
            self.through_asgi.append(event)
            if event["type"] == "websocket.disconnect":
                return

    async def open(self) -> None:
        config = uvicorn.Config(
            self.app, ws=DirectProtocol, log_config=None, lifespan="off", interface="asgi3"
        )
        config.load()
        self.protocol = DirectProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
        self.protocol.connection_made(self.transport)
        self.client.send_request(self.client.connect())
        self.protocol.data_received(b"".join(self.client.data_to_send()))
        for _ in range(50):  # the app's task accepts
            if self.direct is not None:
                break
            await asyncio.sleep(0.01)
        assert self.direct is not None
        self.frames()  # the handshake's response

    def send(self, *frames: tuple[Opcode, bytes]) -> None:
        """The client's frames, in one read (as they would come in one TCP segment)."""
        assert self.protocol is not None
        for opcode, data in frames:
            if opcode == Opcode.TEXT:
                self.client.send_text(data)
            elif opcode == Opcode.CLOSE:
                self.client.send_close(1000)
            else:
                self.client.send_binary(data)
        self.protocol.data_received(b"".join(self.client.data_to_send()))

    def frames(self) -> list[Frame]:
        """What the server wrote to the client since last asked."""
        self.client.receive_data(bytes(self.transport.written))
        self.transport.written.clear()
        return [event for event in self.client.events_received() if isinstance(event, Frame)]


async def taking_everything() -> tuple[Socket, list[str]]:
    """An open socket whose handler takes every text message, and the list of what it took."""
    taken: list[str] = []

    def take(text: str) -> bool:
        taken.append(text)
        return True

    socket = Socket(take)
    await socket.open()
    return socket, taken


async def settle(socket: Socket, count: int) -> None:
    for _ in range(100):
        if len(socket.through_asgi) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the app got {socket.through_asgi}")


async def test_a_message_behind_one_still_on_its_way_through_asgi_goes_the_same_way() -> None:
    socket, taken = await taking_everything()
    # A binary frame goes through ASGI; the text frame read with it must not overtake it.
    socket.send((Opcode.BINARY, b"first"), (Opcode.TEXT, b"second"))
    assert taken == []
    await settle(socket, 2)
    assert [event.get("bytes") or event.get("text") for event in socket.through_asgi] == [b"first", "second"]
    socket.send((Opcode.TEXT, b"third"))  # nothing waiting any more: straight to the handler
    assert taken == ["third"] and len(socket.through_asgi) == 2


async def test_a_message_the_handler_declines_goes_through_asgi() -> None:
    socket = Socket(lambda text: text != "declined")
    await socket.open()
    before = direct_socket.COUNTS.taken
    socket.send((Opcode.TEXT, b"taken"), (Opcode.TEXT, b"declined"))
    await settle(socket, 1)
    assert [event["text"] for event in socket.through_asgi] == ["declined"]
    assert direct_socket.COUNTS.taken == before + 1


async def test_a_failing_handler_ends_its_socket_with_1011_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(text: str) -> bool:
        raise RuntimeError("a bug")

    socket, other = Socket(fail), Socket(lambda text: True)
    await socket.open()
    await other.open()
    socket.send((Opcode.TEXT, b"boom"))
    closes = [frame for frame in socket.frames() if frame.opcode == Opcode.CLOSE]
    assert len(closes) == 1 and closes[0].data[:2] == (1011).to_bytes(2, "big")
    assert socket.transport.closed
    await settle(socket, 1)
    assert socket.through_asgi[-1]["type"] == "websocket.disconnect"
    other.send((Opcode.TEXT, b"still here"))  # another socket of the same server goes on
    assert not other.transport.closed and other.through_asgi == []


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 64, 1 << 20])
async def test_frames_cut_anywhere_and_mixed_with_others_arrive_whole_and_in_order(chunk: int) -> None:
    """Text frames read by the direct path or by websockets, whatever the reads cut: every message reaches
    the app once, in order (all taken directly come before the first one sent through ASGI, which the app
    has not read yet), and a ping in between is answered."""
    socket, taken = await taking_everything()
    assert socket.protocol is not None
    sent: list[bytes] = [b"a", "見積".encode() * 40, b"", b"x" * 70_000, b"before binary"]
    client = socket.client
    client.send_text(sent[0])
    client.send_text(sent[1])  # 240 bytes: a 16-bit length
    client.send_ping(b"are you there")
    client.send_text(sent[2])
    client.send_text(sent[3])  # a 64-bit length: websockets reads it
    client.send_text(sent[4])
    client.send_binary(b"binary")
    client.send_text(b"after binary")
    sent += [b"binary", b"after binary"]
    stream = b"".join(client.data_to_send())
    for at in range(0, len(stream), chunk):
        socket.protocol.data_received(stream[at : at + chunk])
    await settle(socket, len(sent) - len(taken))
    through_asgi = [event.get("bytes") or event.get("text", "").encode() for event in socket.through_asgi]
    assert [text.encode() for text in taken] + through_asgi == sent
    assert len(taken) >= (1 if chunk < 6 else 3)  # the direct path read some of them
    pongs = [frame for frame in socket.frames() if frame.opcode == Opcode.PONG]
    assert [pong.data for pong in pongs] == [b"are you there"]


async def test_the_rest_of_a_frame_cut_by_a_read_is_never_read_as_a_frame_of_its_own() -> None:
    socket, taken = await taking_everything()
    assert socket.protocol is not None
    inner = b"\x81\x82\x00\x00\x00\x00hi"  # what a whole masked text frame "hi" looks like
    payload = b"abc" + inner
    binary = bytes((0x82, 0x80 | len(payload))) + bytes(4) + payload  # masked with a zero key: as it is
    cut = len(binary) - len(inner)
    socket.protocol.data_received(binary[:cut])
    socket.protocol.data_received(binary[cut:])  # starts like a frame, but is the binary frame's end
    await settle(socket, 1)
    assert taken == [] and socket.through_asgi == [{"type": "websocket.receive", "bytes": payload}]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x02hi", 1002),  # a client's frame must be masked
        (b"\x81\x82\x00\x00\x00\x00\xff\xfe", 1007),  # not UTF-8
        (b"\xc1\x82\x00\x00\x00\x00hi", 1002),  # a reserved bit set
    ],
)
async def test_a_frame_the_direct_path_cannot_read_is_refused_as_websockets_refuses_it(
    frame: bytes, code: int
) -> None:
    socket, taken = await taking_everything()
    assert socket.protocol is not None
    socket.protocol.data_received(frame)
    closes = [f for f in socket.frames() if f.opcode == Opcode.CLOSE]
    assert taken == [] and len(closes) == 1 and closes[0].data[:2] == code.to_bytes(2, "big")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 70000])
def test_a_text_frame_is_framed_as_websockets_frames_it(length: int) -> None:
    payload = bytes(i % 128 for i in range(length))
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


async def test_a_frame_is_written_at_once_only_while_the_socket_can_take_it() -> None:
    socket = Socket(lambda text: True)
    await socket.open()
    assert socket.direct is not None and socket.protocol is not None
    before = direct_socket.COUNTS.written
    assert socket.direct.send_text_now("one")
    long = "見積" * 40_000  # a frame with a 64-bit length
    socket.protocol.pause_writing()  # the client reads slower than we write: ASGI's send waits for it
    assert not socket.direct.send_text_now("two")
    socket.protocol.resume_writing()
    assert socket.direct.send_text_now("three")
    assert socket.direct.send_text_now(long)
    assert [frame.data for frame in socket.frames()] == [b"one", b"three", long.encode()]
    assert direct_socket.COUNTS.written == before + 3
    socket.send((Opcode.CLOSE, b""))  # the client closes: nothing more is written directly
    assert not socket.direct.send_text_now("four")


async def test_frames_go_directly_only_while_the_socket_waits_for_them_and_keep_their_order(
    app: Starlette,
    room_id: str,  # noqa: F811 - fixture
) -> None:
    """``Connection.send_directly``: a frame produced while the socket's writer still holds or waits on an
    earlier one is queued; once the writer waits, frames are written by whoever produced them; a frame the
    socket cannot take at once, one for another socket, or an error frame to translate are queued."""
    hub: RoomHub = services(app).hub
    client = Client()
    async with (
        hub.participate(room_id, Role.HOST) as host_seat,
        hub.participate(room_id, Role.GUEST) as guest_seat,
    ):
        iterator = guest_seat.outgoing().__aiter__()
        await frame_of(guest_seat, iterator, "welcome")
        await hub.settle(room_id)
        direct: list[str] = []
        takes = True

        def write(text: str) -> bool:
            if takes:
                direct.append(text)
            return takes

        typed: list[bytes] = []

        async def type_(text: str) -> None:
            frame = client.edit(len(str(client.text)), text)
            typed.append(parse_sync_message(base64.b64decode(frame.data))[1])
            await host_seat.send(frame)

        queued: list[dict[str, Any]] = []

        async def read_until_memo() -> None:
            for _ in range(20):
                item = await next_item(guest_seat, iterator)
                assert item.message is not None
                queued.append(item.message)
                if item.message["type"] == "memo.sync":
                    return
            raise AssertionError(f"no memo.sync in {queued}")

        await type_("前")
        await read_until_memo()  # what the guest's socket was sent so far is read: its queue is empty
        guest_seat.send_directly(write)
        await type_("見")  # the guest's writer is not waiting for frames (busy with the last): queued
        assert direct == []
        await read_until_memo()
        pending = asyncio.ensure_future(iterator.__anext__())  # the guest's writer waits for more
        for _ in range(3):
            await asyncio.sleep(0)
        await type_("積")
        await type_("書")
        assert len(direct) == 2 and not pending.done()
        takes = False  # the socket cannot take a frame now: it waits in the queue
        await type_("a")
        last = (await asyncio.wait_for(pending, 5.0)).message
        assert last is not None
        updates = [m["data"] for m in queued if m["type"] == "memo.sync"]
        updates += [json.loads(text)["data"] for text in direct] + [last["data"]]
        assert [parse_sync_message(base64.b64decode(data))[1] for data in updates] == typed
        takes = True
        await host_seat.send(
            Client().edit(0, "x").model_copy(update={"data": "@@"})
        )  # bad: an error to the host
        await hub.settle(room_id)
        assert len(direct) == 2, "the host's error frame is not the guest's"
        guest_seat.send_directly(None)


async def test_keystrokes_through_the_server_take_the_direct_path_and_arrive_in_order(
    server: LiveServer,  # noqa: F811 - fixture
    host: Browser,  # noqa: F811 - fixture
    guest: Browser,  # noqa: F811 - fixture
) -> None:
    room = await start(host, await issue(guest))
    path = f"/ws/rooms/{room['room_id']}"
    assert (await guest.open(room["url"])).status_code == 200
    async with host.websocket(path, V1) as host_socket, guest.websocket(path, V1) as guest_socket:
        await receive_type(host_socket, "welcome")
        await receive_type(guest_socket, "welcome")
        await asyncio.to_thread(server.call, services(server.app).hub.settle(room["room_id"]))
        taken, written = direct_socket.COUNTS.taken, direct_socket.COUNTS.written
        client = Client()
        typed: list[bytes] = []
        for i in range(30):
            frame = client.edit(i, "見積書"[i % 3])
            typed.append(parse_sync_message(base64.b64decode(frame.data))[1])
            await host_socket.send(frame.model_dump_json())
        got: list[bytes] = []
        for _ in range(200):
            if len(got) == len(typed):
                break
            message = await receive(guest_socket)
            if message["type"] == "memo.sync":
                kind, payload = parse_sync_message(base64.b64decode(message["data"]))
                if kind == UPDATE:
                    got.append(payload)
        assert got == typed
        # Most keystrokes took the direct path both ways (one waiting behind another goes the ordinary way).
        assert direct_socket.COUNTS.taken - taken >= 20
        assert direct_socket.COUNTS.written - written >= 20
