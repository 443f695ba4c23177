"""The gateway answers in the reader's language: ``Accept-Language: vi`` gives Vietnamese texts.

A pure ASGI middleware around the app (outside the body limit and the API keys, so their errors
are translated too). When the request prefers a language other than English, it reads each JSON
answer and passes it through ``starter.i18n.localize_body``: an error's ``message``, an order's
``waitingFor``, timeline details and attention reason. Codes, statuses, ids and times stay as
they are. Other answers (``/docs``, ``/metrics``, ``/openapi.json``) pass unchanged.
docs/http-api.md, "Language".
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starter.i18n import Lang, localize_body, negotiate


class Localize:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lang = negotiate(_header(scope, b"accept-language"))
        start: Message | None = None
        chunks: list[bytes] = []

        async def localized(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"vary", b"Accept-Language")]
                message = {**message, "headers": headers}
                if lang == "en" or not _is_json(headers):
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await _send_localized(send, start, b"".join(chunks), lang)

        await self.app(scope, receive, localized)


async def _send_localized(send: Send, start: Message, body: bytes, lang: Lang) -> None:
    try:
        document: Any = json.loads(body)
    except ValueError:
        translated = body
    else:
        translated = json.dumps(
            localize_body(document, lang), ensure_ascii=False, separators=(",", ":")
        ).encode()
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in (b"content-length", b"content-language")
    ]
    headers += [
        (b"content-length", str(len(translated)).encode()),
        (b"content-language", lang.encode()),
    ]
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": translated})


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"content-type" and value.split(b";")[0].strip() == b"application/json"
        for name, value in headers
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
