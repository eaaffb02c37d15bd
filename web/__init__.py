"""The Starlette application and everything a person touches.

Owns pages, the HTTP API, WebSocket endpoints, sign-in and sessions, settings, translations (i18n), the
``tsunagu`` command and the browser code under ``static/``. The composition root: it builds the other
packages' objects from settings and may import any of them.
"""

from starlette.convertors import IntegerConvertor, register_url_convertor


class RowId(IntegerConvertor):
    """``{…:int}`` in every route: a database id, at most 18 digits. A longer number names no row, so no
    route matches it (404) and it never reaches the database, where SQLite refuses an integer past 2**63
    (an OverflowError: a 500 for anyone who types a long number)."""

    regex = "[0-9]{1,18}"


register_url_convertor("int", RowId())  # before any route is made: importing ``web.x`` runs this first
