"""Yjs participants in Node: the browser's memo-sync.js (npm yjs, y-protocols) over a real WebSocket (npm ws),
one Node process each, driven line by line from a test (tests/interop/memo_client.mjs).

Node and the npm packages come from ``make test`` (apt's nodejs, ``npm ci`` from the committed lock); a
missing one fails the test rather than skipping it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "tests/interop/memo_client.mjs"
PACKAGES = ("yjs", "y-protocols", "lib0", "ws")


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed: `make test` installs it (apt nodejs) with the npm packages")
    for package in PACKAGES:
        if not (ROOT / "node_modules" / package / "package.json").exists():
            pytest.fail(f"npm package {package} is missing: run `make test` (npm ci from package-lock.json)")
    return path


@dataclass(frozen=True)
class State:
    text: str
    synced: bool  # connected, welcomed, and has answered the server's step 1
    online: bool  # wants to be connected (reconnects after unexpected closes)
    errors: list[str]  # codes of the error frames it got
    exceptions: list[str]  # frames its Yjs could not handle
    closes: list[int]
    client: int  # its Y.Doc's client id (a new one after starting afresh)


class YjsClient:
    """One participant: ``await YjsClient.start(...)``, then commands; ``aclose()`` ends the process."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.serial = 0

    @classmethod
    async def start(cls, name: str, base_url: str, room_id: str, cookie: str, role: str) -> YjsClient:
        url = base_url.replace("http", "ws", 1) + f"/ws/rooms/{room_id}"
        process = await asyncio.create_subprocess_exec(
            node(),
            str(CLIENT),
            url,
            cookie,
            base_url,
            role,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # a state line carries the whole memo
        )
        return cls(name, process)

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.serial += 1
        self.process.stdin.write(json.dumps({"id": self.serial, "op": op, **fields}).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 10)
        if not line:
            raise AssertionError(f"{self.name}: the Node process ended (exit {self.process.returncode})")
        reply: dict[str, Any] = json.loads(line)
        assert reply["id"] == self.serial and reply["ok"], f"{self.name}: {reply}"
        return reply

    async def state(self) -> State:
        reply = await self.call("state")
        return State(
            reply["text"],
            reply["synced"],
            reply["online"],
            reply["errors"],
            reply["exceptions"],
            reply["closes"],
            reply["client"],
        )

    async def connect(self) -> None:
        await self.call("connect")

    async def drop(self, abrupt: bool = False) -> None:
        await self.call("drop", abrupt=abrupt)

    async def op(self, at: int, remove: int = 0, insert: str = "") -> None:
        """At code point ``at``, delete ``remove`` code points and insert ``insert``, as a textarea would."""
        await self.call("op", at=at, remove=remove, insert=insert)

    async def ime(self, at: int, reading: str, result: str) -> None:
        await self.call("ime", at=at, reading=reading, result=result)

    async def aclose(self) -> None:
        if self.process.returncode is None:
            try:
                await self.call("quit")
                await asyncio.wait_for(self.process.wait(), 5)
            except (AssertionError, TimeoutError, ConnectionError):
                self.process.kill()
                await self.process.wait()
