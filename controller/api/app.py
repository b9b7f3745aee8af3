"""`create_app(deps)`: the control-centre HTTP application (FastAPI), built from plain deps.

    /api/v1/...          JSON API (OpenAPI at /api/v1/openapi.json)
    /play/...            HLS playlists and signed segment URLs
    /                    the web console; /static/ its files
    /metrics             Prometheus text format

Nothing is created at import time and nothing global is kept: the app holds `deps` on its
state and every route reads them through typed dependencies. Errors leave as one JSON shape
(`controller.api.errors`); library errors are translated once, here.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.api.deps import ApiDeps
from controller.api.errors import ApiError, error_response, status_for
from controller.api.metrics import Metrics, route_family
from controller.api.routes import (
    audit,
    auth,
    catalog,
    directory,
    exports,
    fleet,
    footage,
    grants,
    install,
    live,
    play,
    report,
    scheduler,
    share_requests,
    shares,
    timeline,
    web,
)
from controller.audit.log import AuditError
from controller.catalog import CatalogError, CatalogUnavailableError
from controller.grants.errors import GrantRefused
from controller.grants.store import GrantStoreError
from controller.storage import StorageError

log = logging.getLogger("vigil.api")

API_PREFIX = "/api/v1"


class GuardMiddleware:
    """Request size limit, request counting and the headers every response carries."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        family = route_family(scope.get("path", ""))
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        problem = None
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            problem = (413, "oversize", f"request body over {self.max_body} bytes")
        elif length is None and b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            problem = (411, "bad_request", "send a Content-Length (chunked bodies are refused)")
        status_seen = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status_seen
            if message["type"] == "http.response.start":
                status_seen = int(message["status"])
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if scope.get("scheme") == "https":  # served over TLS: browsers keep to it
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            if problem is not None:
                status, reason, text = problem
                self.metrics.inc("vigil_http_refusals_total", reason=reason)
                await error_response(status, reason, text)(scope, receive, send_wrapped)
            else:
                await self.app(scope, receive, send_wrapped)
        finally:
            self.metrics.inc("vigil_http_requests_total", family=family, status=str(status_seen))


def _install_handlers(app: FastAPI, metrics: Metrics) -> None:
    def refusal(status: int, reason: str, message: str, headers: Any = None) -> JSONResponse:
        metrics.inc("vigil_http_refusals_total", reason=reason)
        return error_response(status, reason, message, headers)

    async def api_error(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return refusal(exc.status, exc.reason, exc.message, exc.headers)

    async def grant_refused(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GrantRefused)
        return refusal(status_for(exc.reason.value), exc.reason.value, exc.message)

    async def invalid(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return refusal(400, "bad_request", "; ".join(parts) or "invalid request")

    async def http_error(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        reason = "not_found" if exc.status_code == 404 else "bad_request"
        return refusal(exc.status_code, reason, str(exc.detail))

    async def unavailable(_r: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, AuditError):
            reason = "audit_unavailable"
        elif isinstance(exc, StorageError):
            reason = "storage_unavailable"
        else:
            reason = "catalog_unavailable"
        log.error("%s: %s", reason, exc)
        return refusal(503, reason, "a back-end service is unavailable; nothing was served")

    async def catalog_error(r: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, CatalogUnavailableError):
            return await unavailable(r, exc)
        return refusal(400, "bad_request", str(exc))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(GrantRefused, grant_refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for kind in (AuditError, StorageError, GrantStoreError, SQLAlchemyError):
        app.add_exception_handler(kind, unavailable)
    app.add_exception_handler(CatalogError, catalog_error)


def create_app(deps: ApiDeps) -> FastAPI:
    """The HTTP application over `deps` (start it with `HttpComponent` or any ASGI server)."""
    app = FastAPI(
        title="Vigil control centre",
        version="1",
        description="Cameras, grants, playback, exports, fleet and audit of a Vigil city.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # the Swagger UI loads from a CDN; the city extranet has none
        redoc_url=None,
    )
    app.state.deps = deps
    for module in (
        auth,
        catalog,
        directory,
        grants,
        exports,
        fleet,
        footage,
        scheduler,
        audit,
        report,
        play,
        live,
        install,
        shares,
        share_requests,
        timeline,
        web,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=deps.web_dir, check_dir=False), name="static")
    _install_handlers(app, deps.metrics)
    app.add_middleware(
        GuardMiddleware, metrics=deps.metrics, max_body_bytes=deps.settings.max_body_bytes
    )
    return app
