"""The demo org ``make run`` seeds (``tsunagu demo``), so that a first trial shows every feature: its four
logins, a sample document drawn at seed time and prepared by the real document worker, two shared memo
templates (one the default every new meeting's memo starts with), and a complete business card for each host.

Idempotent: a second run adds nothing, and gives existing users back the passwords kept under ``DATA_DIR``.
"""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.storage import Storage, open_storage
from documents.library import DocumentJobs, DocumentSettings, create_document
from documents.models import Document, DocumentStatus
from store.db import create_engine, dispose, session_factory
from store.models import BusinessCard, MemoTemplate, Org, Role, User, utcnow
from web import accounts, demo_meetings, passwords
from web.card_images import card_key, reencode
from web.memo_templates import SHARED_LIMIT
from web.settings import Settings

DEMO_ORG = ("demo", "デモ株式会社")
DEMO_USERS = (
    ("admin@demo.example", "管理 花子", Role.ADMIN),
    ("manager@demo.example", "主任 次郎", Role.MANAGER),
    ("host1@demo.example", "営業 一郎", Role.HOST),
    ("host2@demo.example", "営業 二美", Role.HOST),
)
SAMPLE_DOCUMENT = "サービスご紹介（サンプル）.pdf"
TEMPLATES = (
    ("初回ヒアリング", "■ご要望\n\n■現在の課題\n\n■ご予算\n\n■導入希望時期\n\n■次回のお約束\n", True),
    ("お見積もりのご説明", "■お見積もり番号\n\n■ご質問\n\n■ご検討のご予定\n", False),
)
# Each host's card: family, given, their readings, title (the company is the org's name).
CARDS = {
    "host1@demo.example": ("営業", "一郎", "えいぎょう", "いちろう", "営業部 課長", "03-1234-5678"),
    "host2@demo.example": ("営業", "二美", "えいぎょう", "ふたみ", "営業部 主任", "03-1234-5679"),
}

# Fonts that draw Japanese, where Debian puts them (fonts-ipafont-gothic, fonts-noto-cjk); without one the
# sample document is drawn in English with DejaVu, which every Debian has.
CJK_FONTS = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf",
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
)
LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

SLIDES_JA = (
    ("サービスご紹介", ["電話とブラウザで、その場で画面を共有", "デモ株式会社 営業部"]),
    (
        "こんなお悩みはありませんか",
        ["訪問の移動に時間がかかる", "電話だけでは資料を説明しにくい", "商談の記録が残らない"],
    ),
    (
        "つなぐでできること",
        ["資料を一緒にめくる・指し示す", "共有メモをお互いに書き込む", "ファイルと名刺をその場でお渡し"],
    ),
    ("導入の流れ", ["1. お問い合わせ", "2. 無料トライアル（30日）", "3. ご契約・ご利用開始"]),
    ("料金プラン", ["スタンダード：月額 9,800円／ユーザー", "エンタープライズ：お見積もり", "初期費用：0円"]),
)
SLIDES_EN = (
    ("Our service", ["Share a screen while you talk on the phone", "Demo Inc., Sales"]),
    (
        "Sound familiar?",
        [
            "Hours lost travelling to visits",
            "Documents are hard to explain by phone",
            "Nothing of the meeting is kept",
        ],
    ),
    (
        "What tsunagu does",
        ["Turn and point at pages together", "Write in a shared memo", "Hand over files and business cards"],
    ),
    ("Getting started", ["1. Contact us", "2. Free trial (30 days)", "3. Contract and start"]),
    ("Plans", ["Standard: 9,800 yen per user and month", "Enterprise: on request", "No set-up fee"]),
)


def _font(paths: tuple[str, ...], size: int) -> ImageFont.FreeTypeFont | None:
    for path in paths:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return None


def sample_document() -> bytes:
    """A five-page slide deck as a PDF, drawn with Pillow (no other tool needed at seed time)."""
    title_font = _font(CJK_FONTS, 64)
    slides = SLIDES_JA if title_font is not None else SLIDES_EN
    title_font = title_font or _font((LATIN_FONT,), 60)
    body_font = _font(CJK_FONTS, 40) or _font((LATIN_FONT,), 38)
    accent, ink, soft = (11, 107, 203), (16, 24, 40), (232, 240, 252)
    pages: list[Image.Image] = []
    for number, (title, lines) in enumerate(slides, start=1):
        page = Image.new("RGB", (1600, 1200), "white")
        draw = ImageDraw.Draw(page)
        draw.rectangle((0, 0, 1600, 200), fill=accent)
        draw.text((90, 62), title, font=title_font, fill="white")
        for row, line in enumerate(lines):
            top = 300 + row * 150
            draw.rounded_rectangle((90, top - 20, 1510, top + 90), radius=24, fill=soft)
            draw.ellipse((120, top + 15, 150, top + 45), fill=accent)
            draw.text((185, top), line, font=body_font, fill=ink)
        if number == 5:  # a small chart, so that pointing at something has something to point at
            for index, height in enumerate((180, 260, 340)):
                left = 1100 + index * 130
                draw.rectangle((left, 1080 - height, left + 90, 1080), fill=accent)
        draw.text((1480, 1120), f"{number} / {len(slides)}", font=body_font, fill=(102, 112, 133))
        pages.append(page)
    out = io.BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=200)
    return out.getvalue()


def _avatar(initial: str) -> bytes:
    image = Image.new("RGB", (400, 400), (11, 107, 203))
    draw = ImageDraw.Draw(image)
    draw.ellipse((120, 60, 280, 220), fill=(232, 240, 252))
    draw.rounded_rectangle((70, 240, 330, 420), radius=120, fill=(232, 240, 252))
    font = _font(CJK_FONTS, 72)
    if font is not None:
        draw.text((165, 98), initial, font=font, fill=(11, 107, 203))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def _users(db: AsyncSession, org: Org, saved: dict[str, str]) -> dict[str, str]:
    logins: dict[str, str] = {}
    for email, name, role in DEMO_USERS:
        user = await db.scalar(select(User).where(User.email == email))
        password = saved.get(email) or secrets.token_urlsafe(9)
        if user is None:
            await accounts.add_user(db, org, email, name, role, password)
        elif not passwords.verify_now(user.password_hash, password):
            await accounts.set_password(db, user, password)
        logins[email] = password
    return logins


async def _templates(db: AsyncSession, org: Org) -> None:
    """The two shared templates, unless the org has them (or has chosen a default of its own since)."""
    shared = list(
        await db.scalars(
            select(MemoTemplate).where(MemoTemplate.org_id == org.id, MemoTemplate.owner_id.is_(None))
        )
    )
    has_default = any(template.is_default for template in shared)
    for title, body, default in TEMPLATES:
        if any(template.title == title for template in shared) or len(shared) >= SHARED_LIMIT:
            continue
        template = MemoTemplate(
            org_id=org.id, owner_id=None, title=title, body=body, is_default=default and not has_default
        )
        db.add(template)
        shared.append(template)


async def _cards(db: AsyncSession, org: Org, storage: Storage) -> None:
    for email, (family, given, family_reading, given_reading, title, phone) in CARDS.items():
        user = await db.scalar(select(User).where(User.email == email))
        if user is None or await db.get(BusinessCard, user.id) is not None:
            continue
        photo = f"photo-{secrets.token_hex(8)}.jpg"
        key = card_key(user.id, photo)
        assert key is not None
        await storage.put(key, reencode(_avatar(family[:1])))
        db.add(
            BusinessCard(
                user_id=user.id,
                org_id=org.id,
                family_name=family,
                given_name=given,
                family_name_reading=family_reading,
                given_name_reading=given_reading,
                company=org.name,
                title=title,
                phone=phone,
                email=email,
                photo=photo,
                images=json.dumps(["", "", ""]),
                updated_at=utcnow(),
            )
        )


async def _document(
    sessions: async_sessionmaker[AsyncSession], settings: DocumentSettings, storage: Storage, org_id: int
) -> None:
    """The sample document, org-wide, prepared by the same worker as any upload (waited for)."""
    async with sessions.begin() as db:
        found = await db.scalar(
            select(Document).where(Document.org_id == org_id, Document.name == SAMPLE_DOCUMENT)
        )
        if found is not None and found.status != DocumentStatus.FAILED:
            return
        if found is not None:
            await db.delete(found)
        owner = await db.scalar(select(User).where(User.email == DEMO_USERS[0][0]))
        assert owner is not None
        pdf = sample_document()
        document = await create_document(
            db, org_id=org_id, owner_id=owner.id, name=SAMPLE_DOCUMENT, org_wide=True, size=len(pdf)
        )
        jobs = DocumentJobs(sessions, settings, storage)
        await storage.put(jobs.storage.original(org_id, document.id), pdf)
        doc_id = document.id
    jobs.start(doc_id)
    await jobs.idle()
    await jobs.aclose()


async def seed_demo(
    sessions: async_sessionmaker[AsyncSession],
    settings: DocumentSettings,
    storage: Storage,
    saved: dict[str, str],
) -> dict[str, str]:
    """Seed (or complete) the demo org; returns each demo user's password."""
    async with sessions.begin() as db:
        org = await db.scalar(select(Org).where(Org.slug == DEMO_ORG[0]))
        if org is None:
            org = await accounts.create_org(db, *DEMO_ORG)
        logins = await _users(db, org, saved)
        await _templates(db, org)
        await db.flush()
        await _cards(db, org, storage)
        demo_hosts = select(User).where(User.org_id == org.id, User.role == Role.HOST).order_by(User.id)
        await demo_meetings.seed(db, org, list(await db.scalars(demo_hosts)))  # a few finished meetings, once
        org_id = org.id
    await _document(sessions, settings, storage, org_id)
    return logins


async def seed_demo_from(settings: Settings, saved: dict[str, str]) -> dict[str, str]:
    """:func:`seed_demo` with the database and storage the settings name (``tsunagu demo``, screenshots)."""
    engine = create_engine(settings.database_url)
    storage = open_storage(
        settings.storage_url,
        settings.data_dir,
        access_key=settings.storage_access_key,
        secret_key=settings.storage_secret_key,
    )
    try:
        return await seed_demo(session_factory(engine), settings, storage, saved)
    finally:
        await storage.aclose()
        await dispose(engine)
