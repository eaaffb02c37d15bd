"""Surveys (seed 003): moving a deal to a status with a survey asks for reasons from fixed choice lists,
editable per org: up to 3 重視ポイント for a quote, 1 reason for a close, 1 他社比較 answer for an end; desire
flags (試乗希望, 資料希望…) may be ticked with any of them. Answers are kept per deal, labels as they were."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import N_, InvalidInput
from deals.models import Survey, SurveyAnswer, SurveyChoice

LIMITS = {Survey.QUOTE: 3, Survey.CLOSE: 1, Survey.END: 1, Survey.DESIRE: 20}
DEFAULTS: dict[Survey, tuple[str, ...]] = {
    Survey.QUOTE: ("価格", "納期", "担当者の対応", "アフターサービス", "店舗の近さ", "下取り価格"),
    Survey.CLOSE: ("価格に納得", "担当者の対応", "条件が合った", "信頼できる会社"),
    Survey.END: ("他社で購入", "他車種に決めた", "購入を見送り", "比較していない"),
    Survey.DESIRE: ("試乗希望", "資料希望", "見積希望", "来店希望"),
}
TOO_MANY = N_("Choose at most {limit} answers.")
UNKNOWN_CHOICE = N_("Choose the answers from the list.")


async def choices(db: AsyncSession, org_id: int, *, with_retired: bool = False) -> dict[Survey, list[str]]:
    """The org's choices per survey, in order (made from the defaults the first time)."""
    rows = list(
        await db.scalars(
            select(SurveyChoice)
            .where(SurveyChoice.org_id == org_id)
            .order_by(SurveyChoice.survey, SurveyChoice.position, SurveyChoice.id)
        )
    )
    if not rows:
        rows = [
            SurveyChoice(org_id=org_id, survey=survey, label=label, position=i)
            for survey, labels in DEFAULTS.items()
            for i, label in enumerate(labels)
        ]
        db.add_all(rows)
        await db.flush()
    found: dict[Survey, list[str]] = defaultdict(list)
    for row in rows:
        if with_retired or not row.retired:
            found[row.survey].append(row.label)
    return found


async def set_choices(db: AsyncSession, org_id: int, survey: Survey, labels: Iterable[str]) -> None:
    """The survey's list becomes ``labels`` (in order); choices left out are retired, not deleted."""
    wanted = list(dict.fromkeys(label.strip()[:100] for label in labels if label.strip()))
    await choices(db, org_id)
    rows = {
        row.label: row
        for row in await db.scalars(
            select(SurveyChoice).where(SurveyChoice.org_id == org_id, SurveyChoice.survey == survey)
        )
    }
    for position, label in enumerate(wanted):
        row = rows.get(label)
        if row is None:
            db.add(SurveyChoice(org_id=org_id, survey=survey, label=label, position=position))
        else:
            row.position, row.retired = position, False
    for label, row in rows.items():
        if label not in wanted:
            row.retired = True
    await db.flush()


async def answer(
    db: AsyncSession, org_id: int, deal_id: int, survey: Survey, labels: list[str], now: datetime
) -> None:
    """Replace the deal's answers to ``survey`` with ``labels``, checked against the org's list."""
    picked = list(dict.fromkeys(labels))
    if len(picked) > LIMITS[survey]:
        raise InvalidInput(TOO_MANY, limit=LIMITS[survey])
    allowed = set((await choices(db, org_id)).get(survey, []))
    if not set(picked) <= allowed:
        raise InvalidInput(UNKNOWN_CHOICE)
    await db.execute(
        delete(SurveyAnswer).where(SurveyAnswer.deal_id == deal_id, SurveyAnswer.survey == survey)
    )
    db.add_all(SurveyAnswer(deal_id=deal_id, survey=survey, label=label, at=now) for label in picked)
    await db.flush()


async def answers(db: AsyncSession, deal_ids: Iterable[int]) -> dict[int, dict[Survey, list[str]]]:
    """Each deal's answers per survey (one query for all of them)."""
    ids = list(deal_ids)
    found: dict[int, dict[Survey, list[str]]] = defaultdict(lambda: defaultdict(list))
    if not ids:
        return found
    rows = await db.execute(
        select(SurveyAnswer.deal_id, SurveyAnswer.survey, SurveyAnswer.label)
        .where(SurveyAnswer.deal_id.in_(ids))
        .order_by(SurveyAnswer.id)
    )
    for deal_id, survey, label in rows:
        found[deal_id][survey].append(label)
    return found
