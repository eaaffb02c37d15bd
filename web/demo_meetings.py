"""A few finished meetings for the demo org (``tsunagu demo``), so a first look at 商談記録 has something to
find: memos with their lines' authors, 商談先情報, tags. Added once: an org that has meetings gets none."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings import guest_info
from recordings.models import MeetingRecord
from recordings.records import add_memo_updates, save_memo
from signaling.memo import SharedMemo
from signaling.models import JoinedVia, RoomState
from signaling.rooms import create_room, set_state
from store.models import Org, User

# (days ago, minutes, host index, via, guest details, tags, memo lines as (author, text))
MEETINGS = (
    (1, 32, 0, JoinedVia.NUMBER, ("山田 太郎", "やまだ たろう", "山田工務店", "090-1111-2222"), ("見積",),
     (("host", "お見積もりの件：社用車3台の入替え"), ("guest", "予算は年度内で600万円まで"),
      ("host", "来週水曜までに見積書を送付"))),
    (3, 18, 1, JoinedVia.LINK, ("佐藤 花子", "さとう はなこ", "さくら商事", "080-3333-4444"),
     ("展示会", "試乗"),
     (("guest", "展示会で見たモデルの試乗を希望"), ("host", "土曜10時に試乗予約"),
      ("host", "下取り価格の査定も当日実施"))),
    (8, 45, 0, JoinedVia.NUMBER, ("鈴木 一郎", "すずき いちろう", "鈴木物産", ""), ("契約",),
     (("host", "契約書の最終確認"), ("guest", "支払条件は月末締め翌月末払いで合意"),
      ("host", "納期は来月第2週"))),
    (15, 12, 1, JoinedVia.NUMBER, ("", "", "", ""), (),
     (("guest", "カタログ送付の依頼"), ("host", "本日中にメールで送付します"))),
)  # fmt: skip


async def seed(db: AsyncSession, org: Org, hosts: list[User], now: datetime | None = None) -> int:
    """Add the demo meetings unless the org already has meetings; how many were added."""
    if await db.scalar(select(func.count()).where(MeetingRecord.org_id == org.id)):
        return 0
    now = now or datetime.now(UTC)
    for days, minutes, host_index, via, details, tags, lines in MEETINGS:
        host = hosts[host_index % len(hosts)]
        started = now - timedelta(days=days, hours=2)
        room, record = await create_room(
            db,
            org_id=org.id,
            host_id=host.id,
            via=via,
            guest_token=uuid.uuid4().hex,
            camera=True,
            recording=False,
            home_node="demo",
            now=started.timestamp(),
        )
        # The memo as typed: one update per line, by its author, so the record shows who wrote what when.
        memo, updates = SharedMemo(), list[tuple[str, bytes, str, datetime]]()
        for i, (author, text) in enumerate(lines):
            update = memo.insert(len(memo.text()), ("\n" if i else "") + text)
            updates.append((room.id, update, author, started + timedelta(minutes=2 + 3 * i)))
        await add_memo_updates(db, updates)
        await save_memo(db, room.id, memo.text())
        name, reading, company, phone = details
        info = guest_info.GuestInfo(name, reading, company, phone, "", tuple(tags))
        ended = started + timedelta(minutes=minutes)
        await guest_info.edit(db, record, info, host.id, host.display_name, ended)
        await set_state(db, room.id, RoomState.ENDED, ended.timestamp())
    return len(MEETINGS)
