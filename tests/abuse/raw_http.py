"""A raw HTTP/1.1 upload over a real socket, for what httpx will not do: stop half way, or wait for the
server's word (``Expect: 100-continue``) before sending the body."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from tests.joining import Browser


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawUpload:
    def __init__(self, browser: Browser, path: str, length: int, expect_continue: bool = False) -> None:
        self.browser = browser
        self.path = path
        self.length = length
        self.expect_continue = expect_continue

    async def start(self) -> None:
        """Connect and send the request's head (no body yet)."""
        host, port = self.browser.base_url.removeprefix("http://").rsplit(":", 1)
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        cookie = "; ".join(f"{name}={value}" for name, value in self.browser.http.cookies.items())
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {cookie}\r\n"
            f"X-CSRF-Token: {self.browser.csrf}\r\nAccept: application/json\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {self.length}\r\n"
            + ("Expect: 100-continue\r\n" if self.expect_continue else "")
            + "\r\n"
        )
        self.writer.write(head.encode())
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, within: float = 10.0) -> Answer:
        """The next response (a ``100 Continue`` included), read within ``within`` seconds."""
        status_line = await asyncio.wait_for(self.reader.readline(), within)
        if not status_line:
            raise ConnectionError("the server closed the connection without an answer")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await asyncio.wait_for(self.reader.readline(), within)
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await asyncio.wait_for(self.reader.readexactly(length), within) if length else b""
        return Answer(status, body)

    async def closed_by_server(self, within: float = 5.0) -> bool:
        """Whether the server has closed the connection: reading gives end of file, or a reset (what the
        kernel sends instead when the server closes with bytes of ours still unread)."""
        try:
            return await asyncio.wait_for(self.reader.read(1), within) == b""
        except ConnectionResetError:
            return True
        except (ConnectionError, TimeoutError):
            return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass
