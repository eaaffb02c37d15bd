"""The Starlette application and everything a person touches.

Owns pages, the HTTP API, WebSocket endpoints, sign-in and sessions, settings, translations (i18n), the
``tsunagu`` command and the browser code under ``static/``. The composition root: it builds the other
packages' objects from settings and may import any of them.
"""
