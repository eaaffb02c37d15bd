"""共有メモ: the memo download (メモを渡す); the memo's live sync runs on the room channel, its templates are
``web.memo_templates``."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from signaling import rooms
from signaling.after_meeting import check_guest
from signaling.protocol import Role as RoomRole
from web.meetings import participant
from web.services import services


def memo_file(text: str) -> bytes:
    """The memo as a text file that opens correctly everywhere.

    UTF-8 with a BOM: Windows Notepad (before Windows 10 1903) and Excel read a BOM-less file as Shift_JIS
    and garble Japanese; the BOM tells them it is UTF-8, and iOS and Android viewers accept it too. CRLF line
    ends: old Notepad shows LF-only text as one long line; iPhone and Android apps read CRLF as well.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\ufeff".encode() + "\r\n".join(lines).encode("utf-8")


async def memo_download(request: Request) -> Response:
    """メモを渡す: the memo as a file, for the room's two participants only (anyone else: 404); for its guest
    until ``GUEST_ACCESS_AFTER_END_HOURS`` after the meeting ended (signaling.after_meeting)."""
    room, role, connect_id = await participant(request)
    if role == RoomRole.GUEST:
        state = services(request)
        check_guest(room, state.clock(), state.settings.guest_access_after_end_hours)
    live = services(request).hub.room(room.id)
    if live is not None:
        text = live.memo.text()
    else:
        async with services(request).sessions() as db:
            text = await rooms.memo_text(db, room.id)
    name = f"メモ_{connect_id or room.created_at.strftime('%Y%m%d')}.txt"
    return Response(
        memo_file(text),
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename=\"memo.txt\"; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )


routes: list[BaseRoute] = [
    Route("/rooms/{room_id}/memo.txt", memo_download, methods=["GET"]),
]
