"""What users run: the installed ``tsunagu`` command (``db upgrade``, ``org add``, ``user add``, ``serve``) in
a subprocess with a fresh data directory, a call with video both ways in Chromium through it, and a server
log with no traceback, no error and nothing printed past the logger, through to a graceful stop."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.calls import decoding, meeting
from tests.harness.serve import Serve, problems

pytestmark = pytest.mark.browser


def test_a_call_through_tsunagu_serve_has_video_both_ways_and_a_clean_log(
    served: Serve, new_context: Callable[..., Any]
) -> None:
    host, guest = meeting(new_context, served)
    decoding(host, within=10)  # the guest's camera on the host's page
    decoding(guest, within=10)  # the host's camera on the guest's page
    host.get_by_role("button", name="終了").click()  # the page's confirmation is accepted (tests.calls)
    host.get_by_role("heading", name="商談を終了しました。").wait_for()
    guest.get_by_role("heading", name="商談は終了しました。").wait_for()
    for page in (host, guest):
        page.context.close()
    # uvicorn shuts down gracefully, then re-raises the signal it caught: the status says SIGTERM.
    assert served.stop() == -signal.SIGTERM

    lines = served.log_lines()
    assert not problems(lines), "\n".join(problems(lines)[:5])
    seats = {event.get("seat") for event in served.events("media.answered")}
    assert seats == {"host", "guest"}, f"the log holds the server's media events: {seats}"
    assert served.events("started"), "the log holds the server's start"
    assert served.events("Application shutdown complete."), "the lifespan's shutdown ran to its end"
