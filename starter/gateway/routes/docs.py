"""``/docs``: Swagger UI served from the gateway itself, so it works without internet access.

FastAPI's default page loads Swagger UI from a CDN. Here FastAPI's own page ("self-hosting
JavaScript and CSS for docs") loads Swagger UI 5 from the static files of the PyPI package
``fastapi-offline``, mounted under ``/docs/static``. (``swagger-ui-bundle`` ships Swagger UI 4,
which cannot read the OpenAPI 3.1 document FastAPI writes.) ``ESCROW_API_DOCS=false`` turns the
page off; ``/openapi.json`` stays (docs/http-api.md).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS = "/docs"
STATIC = f"{DOCS}/static"
OAUTH2_REDIRECT = f"{DOCS}/oauth2-redirect"


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets from this app (call on an app made with ``docs_url=None``)."""
    app.mount(STATIC, StaticFiles(directory=ASSETS), name="swagger-ui")
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS, response_class=HTMLResponse)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon.png",
            # No badge fetched from validator.swagger.io: nothing leaves the machine.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.include_router(router)
