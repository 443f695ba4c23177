"""Serve schemathesis' synchronous calls with an ``httpx.AsyncClient`` on the tests' event loop.

The gateway's fixtures (time-skipping Temporal, the worker, the order store) live on the pytest
session loop: the Temporal client and the SQLite connections belong to it. Schemathesis' own
ASGI transport runs the app on an event loop of its own in another thread, where they cannot be
used. Its WSGI transport instead calls a plain function in the test's thread, while that loop is
idle, so ``LoopBridge`` is a WSGI app that turns each request back into an ``httpx`` request
and runs it to completion on the session loop: through ``httpx.ASGITransport`` into the gateway
app in-process, or over loopback HTTP to a real server (the sandbox). Every check that sends
requests of its own (``ignored_auth``, ``unsupported_method``, ...) goes through it too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

# One request may wait for a workflow update (a start waits up to 30 s for Cotpay's answer).
REQUEST_TIMEOUT_S = 60.0
_UNSAFE_URI_BYTE = re.compile(rb"[^\x21-\x7e]")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class LoopBridge:
    """A WSGI app that sends each request with ``client`` on ``loop`` (idle while it is called)."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = self._request(environ)
        response = self.loop.run_until_complete(
            asyncio.wait_for(self.client.send(request), REQUEST_TIMEOUT_S)
        )
        self.requests += 1
        status = response.status_code
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw]
        start_response(f"{status} {reason}".strip(), headers)
        return [response.content]

    def _request(self, environ: dict[str, Any]) -> httpx.Request:
        # WSGI strings carry the raw bytes as latin-1 (PEP 3333).
        uri = _uri(environ)
        raw = _UNSAFE_URI_BYTE.sub(lambda m: b"%%%02X" % m[0][0], uri.encode("latin-1"))
        headers: list[tuple[bytes, bytes]] = []
        if environ.get("CONTENT_TYPE"):
            headers.append((b"content-type", environ["CONTENT_TYPE"].encode("latin-1")))
        for key, value in environ.items():
            if key.startswith("HTTP_") and key != "HTTP_CONTENT_LENGTH":
                name = key[5:].lower().replace("_", "-").encode("latin-1")
                headers.append((name, str(value).encode("latin-1")))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        url = self.client.base_url.copy_with(raw_path=raw)
        return httpx.Request(environ["REQUEST_METHOD"], url, headers=headers, content=body)


def _uri(environ: dict[str, Any]) -> str:
    """The request target as sent: ``REQUEST_URI`` keeps the path's percent-encoding (werkzeug
    sets it without the query), ``PATH_INFO`` is already decoded."""
    path = environ.get("REQUEST_URI") or quote(
        environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/", encoding="latin-1"
    )
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query and "?" not in path else path
