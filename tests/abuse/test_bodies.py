"""Every input costs a bounded amount: a form or JSON body is at most 1 MiB, declared or streamed (uploads
have limits of their own, see test_uploads.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette

from store.models import Role
from tests.conftest import make_client
from tests.helpers import csrf_token, seed_org, sign_in


async def test_big_form_and_json_bodies_are_refused(app: Starlette) -> None:
    await seed_org(app, "acme", {"host@acme.example": Role.HOST})
    async with make_client(app) as host:
        await sign_in(host, "host@acme.example")
        token = await csrf_token(host, "/host")
        headers = {"X-CSRF-Token": token, "Accept": "application/json"}
        json_body = await host.post(
            "/api/rooms", content=b'{"number": "' + b"1" * (2 << 20) + b'"}', headers=headers
        )
        assert json_body.status_code == 413 and json_body.json()["error"]["code"] == "body_too_large"

        async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            yield b"lang=ja&next=/"
            for _ in range(40):
                yield b"&x=" + b"y" * 65536

        form = await host.post(
            "/language",
            content=streamed(),
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 413
        assert (await host.post("/api/rooms", json={"number": "0000"}, headers=headers)).status_code == 404
