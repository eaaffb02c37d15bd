"""The org's deal settings, for its admins: the pipeline (rename, add, order, retire statuses; each one's
survey and notice templates), the survey choice lists, and whether hosts share customers and deals."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.errors import InvalidInput
from deals import notices, pipeline, surveys
from deals.models import Survey
from store.models import Role, User
from web.auth import signed_in
from web.deals import SURVEY_LABELS
from web.templating import render

ADMINS = (Role.ADMIN,)
TEMPLATE_LIMITS = {"sms_text": 670, "email_subject": 200, "email_body": 10_000}


@signed_in(*ADMINS)
async def settings_page(request: Request) -> Response:
    user: User = request.state.user
    db: AsyncSession = request.state.db
    return render(
        request,
        "deal_settings.html",
        statuses=await pipeline.statuses(db, user.org_id),
        choices=await surveys.choices(db, user.org_id),
        survey_labels=SURVEY_LABELS,
        surveys=list(Survey),
        placeholders=notices.PLACEHOLDERS,
        share=user.org.share_customers,
    )


def _survey(value: str) -> Survey:
    return Survey(value) if value in Survey._value2member_map_ else Survey.NONE


@signed_in(*ADMINS)
async def add_status(request: Request) -> Response:
    user: User = request.state.user
    form = await request.form()
    await pipeline.add_status(
        request.state.db, user.org_id, str(form.get("name", "")), _survey(str(form.get("survey", "")))
    )
    return RedirectResponse("/deal-settings?saved=1", status_code=303)


@signed_in(*ADMINS)
async def edit_status(request: Request) -> Response:
    """Rename, retire or bring back a status; set its survey and its notice templates."""
    user: User = request.state.user
    status = await pipeline.status(request.state.db, user.org_id, int(request.path_params["status_id"]))
    form = await request.form()
    name = str(form.get("name", "")).strip()
    if not name or len(name) > 50:
        raise InvalidInput(pipeline.NAME_NEEDED)
    texts = {
        key: str(form.get(key, "")).replace("\r\n", "\n")[:limit] for key, limit in TEMPLATE_LIMITS.items()
    }
    status.name, status.retired = name, form.get("retired") == "1"
    status.survey = _survey(str(form.get("survey", "")))
    status.sms_text, status.email_subject, status.email_body = (
        texts["sms_text"],
        texts["email_subject"].replace("\n", " "),
        texts["email_body"],
    )
    return RedirectResponse("/deal-settings?saved=1", status_code=303)


@signed_in(*ADMINS)
async def order_statuses(request: Request) -> Response:
    user: User = request.state.user
    form = await request.form()
    ids = [int(str(v)) for v in form.getlist("order") if str(v).isdigit() and len(str(v)) < 10]
    await pipeline.reorder(request.state.db, user.org_id, ids)
    return RedirectResponse("/deal-settings?saved=1", status_code=303)


@signed_in(*ADMINS)
async def edit_choices(request: Request) -> Response:
    """A survey's choices, one per line (lines left out are retired; answers keep their labels)."""
    user: User = request.state.user
    survey = _survey(str(request.path_params["survey"]))
    if survey == Survey.NONE:
        raise InvalidInput()
    lines = str((await request.form()).get("choices", "")).splitlines()[:50]
    await surveys.set_choices(request.state.db, user.org_id, survey, lines)
    return RedirectResponse("/deal-settings?saved=1", status_code=303)


@signed_in(*ADMINS)
async def share(request: Request) -> Response:
    user: User = request.state.user
    user.org.share_customers = (await request.form()).get("share") == "1"
    return RedirectResponse("/deal-settings?saved=1", status_code=303)


routes: list[BaseRoute] = [
    Route("/deal-settings", settings_page, methods=["GET"]),
    Route("/deal-settings/statuses", add_status, methods=["POST"]),
    Route("/deal-settings/statuses/{status_id:int}", edit_status, methods=["POST"]),
    Route("/deal-settings/order", order_statuses, methods=["POST"]),
    Route("/deal-settings/surveys/{survey}", edit_choices, methods=["POST"]),
    Route("/deal-settings/share", share, methods=["POST"]),
]
