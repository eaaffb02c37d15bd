"""The browser's protocol module mirrors signaling/protocol.py, and docs/protocol.md lists every code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from signaling.protocol import (
    MAX_FRAME_BYTES,
    POINTER_PER_SECOND,
    SUBPROTOCOL,
    CameraAnswer,
    CameraState,
    ClientMessage,
    CloseCode,
    ErrorCode,
    Presence,
    ServerMessage,
)

ROOT = Path(__file__).resolve().parents[1]
JS = (ROOT / "web/static/src/protocol.js").read_text()
DOC = (ROOT / "docs/protocol.md").read_text()


def _js_object(name: str) -> dict[str, str]:
    body = re.search(rf"export const {name} = Object.freeze\(\{{(.*?)\}}\);", JS, re.S)
    assert body, f"protocol.js has no {name}"
    return dict(re.findall(r"(\w+): \"?([\w.]+)\"?", body.group(1)))


def test_close_codes_match() -> None:
    assert _js_object("CloseCode") == {code.name: str(code.value) for code in CloseCode}


def test_presence_values_match() -> None:
    assert _js_object("Presence") == {p.name: p.value for p in Presence}


def test_error_codes_match_and_are_documented() -> None:
    assert _js_object("ErrorCode") == {code.name: code.value for code in ErrorCode}
    for code in ErrorCode:
        assert f"`{code.value}`" in DOC, f"docs/protocol.md misses error code {code.value}"


def test_camera_states_match() -> None:
    assert set(_js_object("CameraState").values()) == set(get_args(CameraState))
    assert set(get_args(CameraAnswer)) <= set(get_args(CameraState))


def test_subprotocol_and_frame_limit_match() -> None:
    assert f'export const SUBPROTOCOL = "{SUBPROTOCOL}";' in JS
    assert f"export const MAX_FRAME_BYTES = {MAX_FRAME_BYTES};" in JS
    assert f"export const POINTER_PER_SECOND = {POINTER_PER_SECOND};" in JS


def test_the_document_lists_every_code_and_message_type() -> None:
    for code in CloseCode:
        assert f"| {code.value} | {code.name} |" in DOC, f"docs/protocol.md misses close code {code.name}"
    for error in ErrorCode:
        assert f"| `{error.value}` |" in DOC, f"docs/protocol.md misses error code {error.value}"
    client_types = {m.model_fields["type"].annotation.__args__[0] for m in ClientMessage.__origin__.__args__}  # type: ignore[attr-defined]
    server_types = {m.model_fields["type"].default for m in ServerMessage.__args__}
    for kind in client_types | server_types:
        assert f"| `{kind}` |" in DOC, f"docs/protocol.md misses message type {kind}"
