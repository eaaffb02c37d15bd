"""商談記録: the list of meetings (search, filters, sort, pages) and its CSV export.

Hosts see their own meetings; managers and admins every meeting of their org. The filters are the query
string (``from``, ``to``: JST dates; ``host``; ``tag``; ``q``: free text; ``sort``; ``page``), shared with the
CSV (``/records.csv``) and the reports (web/reports.py), so each exports exactly what the page shows.
The queries are in recordings/console.py; one meeting's page is web/record_page.py.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.clock import in_jst
from core.errors import N_, InvalidInput
from documents.models import Document
from recordings import console
from recordings.console import RecordFilter, RecordRow, Sort
from store.models import Role, User
from web.auth import signed_in
from web.files import content_disposition
from web.i18n import Translator
from web.services import services
from web.templating import render, translator

MANAGERS = (Role.ADMIN, Role.MANAGER)
EXCERPT = 80
SORT_LABELS = {
    Sort.NEWEST: N_("Newest first"),
    Sort.OLDEST: N_("Oldest first"),
    Sort.LONGEST: N_("Longest first"),
    Sort.SHORTEST: N_("Shortest first"),
}
VIA_LABELS = {"number": N_("Connect number"), "link": N_("SMS link")}
ROLE_WORDS = {"host": N_("Representative"), "guest": N_("Customer")}
BAD_DATE = N_("Enter dates as YYYY-MM-DD.")
BAD_RANGE = N_("The start date is after the end date.")


@dataclass
class Filters:
    """The filter form as typed, what it means, and what was wrong with it."""

    record_filter: RecordFilter
    form: dict[str, str]
    errors: list[str] = field(default_factory=list)

    def query(self, **changes: str | int) -> str:
        """The query string of this filter (with ``changes``), for links to pages, the CSV and reports."""
        values = {key: value for key, value in {**self.form, **changes}.items() if value not in ("", None)}
        return urlencode(values)


def _date(value: str, errors: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        if BAD_DATE not in errors:
            errors.append(BAD_DATE)
        return None


def filters_from(request: Request, user: User, default_weeks: int | None = None) -> Filters:
    """The filters of ``request``'s query string, for ``user``: a host's are always its own meetings.

    ``default_weeks``: with no dates given, the last so many weeks (the reports' default)."""
    params = request.query_params
    form = {name: params.get(name, "").strip()[:200] for name in ("from", "to", "host", "tag", "q", "sort")}
    errors: list[str] = []
    start, end = _date(form["from"], errors), _date(form["to"], errors)
    if default_weeks and not form["from"] and not form["to"]:
        today = in_jst(datetime.fromtimestamp(services(request).clock(), UTC)).date()
        start = today - timedelta(days=today.weekday()) - timedelta(weeks=default_weeks - 1)
        form["from"] = start.isoformat()
    if start and end and start > end:
        errors.append(BAD_RANGE)
        start = end = None
    host_id: int | None = None
    if user.role == Role.HOST:
        host_id, form["host"] = user.id, ""
    elif form["host"].isdigit():
        host_id = int(form["host"])
    else:
        form["host"] = ""
    sort = Sort(form["sort"]) if form["sort"] in Sort._value2member_map_ else Sort.NEWEST
    form["sort"] = "" if sort == Sort.NEWEST else sort.value
    record_filter = RecordFilter(
        org_id=user.org_id,
        host_id=host_id,
        started_from=console.jst_day_start(start) if start else None,
        started_before=console.jst_day_start(end + timedelta(days=1)) if end else None,
        tag=form["tag"],
        text=form["q"],
        sort=sort,
    )
    return Filters(record_filter, form, errors)


def duration_text(_: Translator, seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return _("{hours} h {minutes} min", hours=hours, minutes=minutes)
    return _("{minutes} min {seconds} s", minutes=minutes, seconds=rest)


def excerpt(memo: str, terms: Iterable[str]) -> str:
    """A line of the memo around the first searched word found in it (else its start)."""
    flat = " ".join(memo.split())
    lowered = flat.casefold()
    start = 0
    for term in terms:
        at = lowered.find(term.casefold())
        if at >= 0:
            start = max(0, at - 20)
            break
    cut = flat[start : start + EXCERPT]
    return ("…" if start else "") + cut + ("…" if start + EXCERPT < len(flat) else "")


async def document_names(db: AsyncSession, org_id: int, ids: Iterable[int]) -> dict[int, str]:
    """Names of the org's documents with these ids (a deleted document is left out)."""
    wanted = set(ids)
    if not wanted:
        return {}
    query = select(Document.id, Document.name).where(Document.org_id == org_id, Document.id.in_(wanted))
    result = await db.execute(query)
    return {document_id: name for document_id, name in result}


@signed_in()
async def records_page(request: Request) -> Response:
    user: User = request.state.user
    db: AsyncSession = request.state.db
    filters = filters_from(request, user)
    page = await console.find(db, filters.record_filter, _page_number(request))
    names = await document_names(db, user.org_id, {d for row in page.rows for d in row.documents})
    words = request.query_params.get("q", "").split()
    return render(
        request,
        "records.html",
        status_code=400 if filters.errors else 200,
        filters=filters,
        page=page,
        rows=[(row, in_jst(row.started_at), excerpt(row.memo, words)) for row in page.rows],
        names=names,
        hosts=await console.org_hosts(db, user.org_id) if user.role in MANAGERS else [],
        tags=await console.org_tags(db, user.org_id),
        sort_labels=SORT_LABELS,
        via_labels=VIA_LABELS,
        duration=lambda seconds: duration_text(translator(request), seconds),
        cap=console.COUNT_CAP,
    )


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and len(raw) < 7 else 1


# CSV

CSV_COLUMNS = (
    N_("Connection ID"),
    N_("Started"),
    N_("Ended"),
    N_("Minutes"),
    N_("Representative"),
    N_("Customer name"),
    N_("Reading (furigana)"),
    N_("Company"),
    N_("Phone"),
    N_("How it started"),
    N_("Tags"),
    N_("Documents shown"),
    N_("Number of files"),
    N_("Memo"),
    N_("Notes"),
)
_FORMULA = frozenset("=+-@\t\r")
_JST_OFFSET = timedelta(hours=9)


def cell(value: str) -> str:
    """Text a spreadsheet shows as text: a leading = + - @ would make Excel run it as a formula (CSV
    injection: a customer types ``=HYPERLINK(…)`` into the memo), so such a cell starts with ``'``."""
    return "'" + value if value and value[0] in _FORMULA else value


def csv_lines(rows: Iterable[Iterable[object]]) -> str:
    """Rows as CSV text, each ended by CRLF; text cells are made safe (:func:`cell`)."""
    return _csv([[cell(v) if isinstance(v, str) else v for v in row] for row in rows])


def csv_line(values: Iterable[object]) -> str:
    return csv_lines([values])


def _csv(rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def _stamp(moment: datetime | None) -> str:
    """JST, to the second, as Excel reads a date and time (isoformat: faster than strftime per row)."""
    if moment is None:
        return ""
    naive_utc = moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)
    return (naive_utc + _JST_OFFSET).isoformat(" ", "seconds")


def _quoted(value: str) -> str:
    """``value`` as csv.writer writes a cell (QUOTE_MINIMAL): in double quotes (doubled inside) when it holds
    a double quote, a comma or a line break."""
    if '"' in value:
        return '"' + value.replace('"', '""') + '"'
    if "," in value or "\n" in value or "\r" in value:
        return '"' + value + '"'
    return value


def _text(value: str) -> str:
    """A text cell made safe (:func:`cell`) and quoted as csv.writer would (:func:`_quoted`)."""
    if not value:
        return ""
    return _quoted("'" + value if value[0] in _FORMULA else value)


def csv_rows(via: dict[str, str], rows: Iterable[RecordRow], names: dict[int, str]) -> str:
    """Meetings as CSV lines, each ended by CRLF (``via``: the translated labels of how meetings start).

    Exactly what csv.writer writes for these cells, built by hand for speed: an export of 100,000 meetings
    runs this per meeting, and csv.writer walks each ~400-character memo a character at a time."""
    vias = {key: _quoted(label) for key, label in via.items()}
    text, get_name = _text, names.get
    lines = []
    for (_id, connect_id, _room, started, ended, seconds, how, _host, host, name, reading, company, phone,
         memo, notes, tags, files, documents) in rows:  # fmt: skip
        lines.append(
            ",".join(
                (
                    _quoted(connect_id),
                    _stamp(started),
                    _stamp(ended),
                    "" if seconds is None else repr(round(seconds / 60, 1)),
                    text(host),
                    text(name),
                    text(reading),
                    text(company),
                    text(phone),
                    vias[how] if how in vias else _quoted(how),
                    text(" ".join(tags)) if tags else "",
                    text(" / ".join([get_name(d, "") for d in documents])) if documents else "",
                    str(files),
                    text(memo),
                    text(notes),
                )
            )
        )
    lines.append("")
    return "\r\n".join(lines)


async def _csv_body(request: Request, filters: Filters, org_id: int) -> AsyncIterator[bytes]:
    """The CSV, streamed: the BOM and header, then one chunk of rows at a time (constant memory)."""
    _ = translator(request)
    sessions = services(request).sessions
    yield ("\ufeff" + csv_line(_(name) for name in CSV_COLUMNS)).encode("utf-8")
    names: dict[int, str] = {}
    via = {key: _(label) for key, label in VIA_LABELS.items()}
    async with sessions() as db:
        async for chunk in console.stream(sessions, filters.record_filter):
            unknown = {d for row in chunk for d in row.documents} - names.keys()
            names.update(await document_names(db, org_id, unknown))
            yield csv_rows(via, chunk, names).encode("utf-8")


@signed_in()
async def records_csv(request: Request) -> Response:
    """The filtered list as CSV: UTF-8 with a BOM and CRLF line ends, so Excel reads Japanese correctly."""
    user: User = request.state.user
    filters = filters_from(request, user)
    if filters.errors:
        raise InvalidInput(filters.errors[0])
    today = in_jst(datetime.fromtimestamp(services(request).clock(), UTC)).strftime("%Y%m%d")
    name = translator(request)("meeting-records") + f"_{today}.csv"
    return StreamingResponse(
        _csv_body(request, filters, user.org_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition(name), "Cache-Control": "private, no-store"},
    )


routes: list[BaseRoute] = [
    Route("/records", records_page, methods=["GET"]),
    Route("/records.csv", records_csv, methods=["GET"]),
]
