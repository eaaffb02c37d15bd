"""One error tree for tsunagu.

Every error a caller should handle derives from :class:`TsunaguError`. Each carries a stable ``code`` (used
in JSON bodies and WebSocket error frames), an HTTP ``status`` and a ``message`` that is the msgid of a
translated, user-facing sentence. Errors from libraries (SQLAlchemy, Redis, aiortc) are translated into
this tree at the edge that calls them.
"""

from __future__ import annotations

from typing import Any, ClassVar


def N_(message: str) -> str:
    """Mark a string as a message id for extraction without translating it here."""
    return message


class TsunaguError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    message: ClassVar[str] = N_("Something went wrong. Please try again.")

    def __init__(self, message: str | None = None, **params: Any) -> None:
        if message is not None:
            self.message = message  # type: ignore[misc]
        self.params = params
        super().__init__(self.message)


class InvalidInput(TsunaguError):
    code = "invalid_input"
    status = 400
    message = N_("The input is not valid.")


class NotAuthenticated(TsunaguError):
    code = "not_authenticated"
    status = 401
    message = N_("Please sign in.")


class Forbidden(TsunaguError):
    code = "forbidden"
    status = 403
    message = N_("You do not have permission to do this.")


class CSRFFailed(Forbidden):
    code = "csrf_failed"
    message = N_("This form has expired. Please reload the page and try again.")


class NotFound(TsunaguError):
    code = "not_found"
    status = 404
    message = N_("Not found.")


class Conflict(TsunaguError):
    code = "conflict"
    status = 409
    message = N_("This conflicts with existing data.")


class RateLimited(TsunaguError):
    code = "rate_limited"
    status = 429
    message = N_("Too many attempts. Please wait {seconds} seconds and try again.")

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(message, seconds=self.retry_after)


class Unavailable(TsunaguError):
    code = "unavailable"
    status = 503
    message = N_("The service is temporarily unavailable.")


class SharedStoreUnavailable(Unavailable):
    """Redis (connect numbers, rate limits, room events between nodes) did not answer."""

    code = "shared_store_unavailable"
    message = N_("Part of the server is not answering right now. Please try again in a moment.")
