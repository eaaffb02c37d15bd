"""What a meeting's guest may still fetch once the meeting has ended: one rule for its files, its memo
(``memo.txt``) and the pages of the documents shown in it.

The customer may download what was exchanged for ``GUEST_ACCESS_AFTER_END_HOURS`` (24 h by default) after the
end, by the server's (injected) clock; after that the guest gets :class:`GuestAccessEnded` (410) for its
files and memo, and 404 for document pages, as for anything it may not see. The host, managers and admins
keep their access through the meeting record. A room that has not ended is always open to its guest.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.errors import N_, TsunaguError
from signaling.models import RoomRow, RoomState
from signaling.rooms import as_utc, at


class GuestAccessEnded(TsunaguError):
    code = "guest_access_ended"
    status = 410
    message = N_(
        "This meeting ended more than {hours} hours ago, so its files, memo and documents are no longer "
        "available."
    )


def guest_may_fetch(room: RoomRow, now: float, hours: float) -> bool:
    """Whether the guest of ``room`` may still fetch what was exchanged in it at ``now``."""
    if room.state != RoomState.ENDED:
        return True
    return room.ended_at is not None and at(now) < as_utc(room.ended_at) + timedelta(hours=hours)


def check_guest(room: RoomRow, now: float, hours: float) -> None:
    """Raise :class:`GuestAccessEnded` when the guest of ``room`` may no longer fetch its things."""
    if not guest_may_fetch(room, now, hours):
        raise GuestAccessEnded(hours=f"{hours:g}")


def ended_after(now: float, hours: float) -> datetime:
    """Rooms that ended after this moment are still open to their guests (for queries)."""
    return at(now) - timedelta(hours=hours)
