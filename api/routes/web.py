"""The web chat page: `/` and its assets from api/static/, and `/v1/config`, which tells the page what this
server allows. The page is plain files (no build step, nothing fetched from another origin); every response
that carries it has a Content-Security-Policy that forbids inline script and any origin but this one."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.deps import SettingsDep, configured_key
from api.schemas import PageConfig

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate (ETag), so an upgraded server never runs yesterday's script
}

router = APIRouter(tags=["web"])


class PageFiles(StaticFiles):
    """api/static/ with the page's security headers on every file."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    # Open without the key, like any login page: the page asks for the key, and the data routes check it.
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


@router.get(
    "/v1/config",
    response_model=PageConfig,
    summary="What this server allows: key needed, uploads, deletes, limits (no key needed)",
)
async def config(settings: SettingsDep) -> PageConfig:
    return PageConfig.of(settings, auth_required=bool(configured_key(settings)))
