"""Reports for managers: meetings and total minutes per host per week, and documents by time on screen, as
server-drawn SVG charts (web/charts.py) with the records' filters (web/records.py; the last 12 weeks when no
dates are given), and the same figures as CSV (UTF-8 with a BOM, CRLF).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.clock import in_jst
from core.errors import N_, InvalidInput
from recordings import console
from recordings.console import DocumentDwell, HostWeek
from store.models import User
from web.auth import signed_in
from web.charts import Bar, Column, horizontal_bars, stacked_columns
from web.files import content_disposition
from web.records import MANAGERS, Filters, csv_line, document_names, filters_from
from web.services import services
from web.templating import render, translator

DEFAULT_WEEKS = 12
TOP_DOCUMENTS = 15
WEEKLY_COLUMNS = (N_("Week (from Monday)"), N_("Representative"), N_("Meetings"), N_("Minutes"))
DOCUMENT_COLUMNS = (N_("Document"), N_("Minutes on screen"), N_("Meetings shown in"))


async def _figures(request: Request) -> tuple[Filters, list[HostWeek], list[tuple[DocumentDwell, str]]]:
    user: User = request.state.user
    db: AsyncSession = request.state.db
    filters = filters_from(request, user, default_weeks=DEFAULT_WEEKS)
    weekly = await console.weekly_by_host(db, filters.record_filter)
    dwell = await console.dwell_by_document(db, filters.record_filter)
    names = await document_names(db, user.org_id, [d.document_id for d in dwell])
    _ = translator(request)
    return filters, weekly, [(d, names.get(d.document_id, _("(deleted document)"))) for d in dwell]


def _weekly_charts(request: Request, weekly: list[HostWeek]) -> tuple[Any, Any]:
    _ = translator(request)
    hosts = list(dict.fromkeys((w.host_id, w.host_name or _("(deleted user)")) for w in weekly))
    weeks = sorted({w.week for w in weekly})
    by_key = {(w.week, w.host_id): w for w in weekly}
    series = [name for _id, name in hosts]

    def columns(value: str) -> list[Column]:
        return [
            Column(
                week.strftime("%m/%d"),
                [getattr(by_key[(week, host)], value) if (week, host) in by_key else 0 for host, _n in hosts],
            )
            for week in weeks
        ]

    meetings = stacked_columns(_("Meetings per week"), series, columns("meetings"), _("meetings"))
    minutes = stacked_columns(_("Minutes per week"), series, columns("minutes"), _("minutes"))
    return meetings, minutes


@signed_in(*MANAGERS)
async def reports_page(request: Request) -> Response:
    filters, weekly, documents = await _figures(request)
    _ = translator(request)
    meetings_chart, minutes_chart = _weekly_charts(request, weekly)
    top = documents[:TOP_DOCUMENTS]
    bars = [Bar(name, d.seconds / 60, _("{minutes} min", minutes=f"{d.seconds / 60:.1f}")) for d, name in top]
    user: User = request.state.user
    db: AsyncSession = request.state.db
    return render(
        request,
        "reports.html",
        status_code=400 if filters.errors else 200,
        filters=filters,
        weekly=weekly,
        documents=documents,
        meetings_chart=meetings_chart,
        minutes_chart=minutes_chart,
        documents_chart=horizontal_bars(_("Documents by time on screen"), bars),
        hosts=await console.org_hosts(db, user.org_id),
        tags=await console.org_tags(db, user.org_id),
        weeks=DEFAULT_WEEKS,
    )


@signed_in(*MANAGERS)
async def reports_csv(request: Request) -> Response:
    """``?figures=weekly`` (default): week, host, meetings, minutes; ``?figures=documents``: by dwell."""
    filters, weekly, documents = await _figures(request)
    if filters.errors:
        raise InvalidInput(filters.errors[0])
    _ = translator(request)
    kind = "documents" if request.query_params.get("figures") == "documents" else "weekly"
    if kind == "weekly":
        lines = [csv_line(_(name) for name in WEEKLY_COLUMNS)]
        lines += [csv_line((w.week.isoformat(), w.host_name, w.meetings, w.minutes)) for w in weekly]
    else:
        lines = [csv_line(_(name) for name in DOCUMENT_COLUMNS)]
        lines += [csv_line((name, round(d.seconds / 60, 1), d.meetings)) for d, name in documents]
    today = in_jst(datetime.fromtimestamp(services(request).clock(), UTC)).strftime("%Y%m%d")
    name = f"{_('report')}_{kind}_{today}.csv"
    return Response(
        ("\ufeff" + "".join(lines)).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(name), "Cache-Control": "private, no-store"},
    )


routes: list[BaseRoute] = [
    Route("/reports", reports_page, methods=["GET"]),
    Route("/reports.csv", reports_csv, methods=["GET"]),
]
