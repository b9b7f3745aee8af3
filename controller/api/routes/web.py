"""The web console (a static page at `/`, its modules under `/static/`), `/metrics`,
`/healthz` (the process answers) and `/readyz` (catalog, store and broker usable).

/healthz and /readyz are unauthenticated and write no audit row: a load balancer or systemd
watchdog polls them every few seconds. /readyz names only the failing dependency and a short
reason (credentials scrubbed), never configuration.

The console needs no build step. hls.js is not committed: `scripts/fetch_web_assets.sh` copies it
to `controller/web/vendor/hls.min.js`, served as `/static/vendor/hls.min.js`; without it the
page still logs in and lists everything, and says how to enable playback.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.api.deps import DepsDep, MetricsAccessDep
from controller.api.errors import ApiError
from controller.api.readiness import check

router = APIRouter(include_in_schema=False)

# The console loads only its own files; players may follow a redirect to an S3 store, so
# connect-src stays open. hls.js runs its transmuxer in a blob: worker.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; worker-src 'self' blob:; connect-src *; frame-ancestors 'none'"
)


@router.get("/")
def console(deps: DepsDep) -> Response:
    index = deps.web_dir / "index.html"
    if not index.is_file():
        raise ApiError("not_found", f"the web console is not installed ({index} missing)")
    return FileResponse(
        index,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": CONSOLE_CSP,
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-cache",
        },
    )


@router.get("/metrics")
def metrics(deps: DepsDep, _access: MetricsAccessDep) -> Response:
    return PlainTextResponse(generate_latest(deps.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
def healthz() -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get("/readyz")
def readyz(deps: DepsDep) -> Response:
    failing = check(deps.readiness or {})
    if failing:
        return JSONResponse(
            {"status": "not_ready", "failing": failing},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )
    return JSONResponse({"status": "ready"}, headers={"Cache-Control": "no-store"})
