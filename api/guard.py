"""Who may reach a server that has no API key: guards against web pages, not against local programs.

A page open in the user's browser can send requests to 127.0.0.1 as easily as curl can. Two attacks follow,
each refused here before any route runs:

* Cross-site writes. A form or `fetch` from https://evil.example can POST an article or DELETE one (the
  browser only hides the reply). State-changing methods whose `Origin` is neither this server's own nor in
  `RAG_CORS_ORIGINS` get 403; so do those a browser marks `Sec-Fetch-Site: cross-site`/`same-site` without an
  Origin. Requests with neither header (curl, scripts, the OpenAI client) are not from a page and pass.
* DNS rebinding. evil.example re-resolves to 127.0.0.1, and its page then reads and writes this server as its
  own origin. The browser still sends `Host: evil.example`, so a Host that is not the bound address,
  localhost, an IP address or a name in `RAG_ALLOWED_HOSTS` gets 421.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_body, is_openai_path
from rag.core.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None]:
    """("example.com", 8000) from "example.com:8000"; IPv6 in brackets; lower-cased; port None when absent."""
    parts = urlsplit(f"//{value.strip()}")
    try:
        port = parts.port
    except ValueError:  # "host:notaport"
        return "", None
    return (parts.hostname or "").lower(), port


def is_ip(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.any_host = "*" in settings.allowed_hosts
        self.hosts = LOCAL_NAMES | {split_host(settings.host)[0]} | {split_host(h)[0] for h in settings.allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in settings.cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        problem = None
        if host is not None and not self.host_allowed(host):
            name = split_host(host)[0] or host
            problem = (
                421,
                "bad_host",
                f"this server does not answer to the host name {name!r}; if it is reached by that name, add it to "
                "RAG_ALLOWED_HOSTS",
            )
        elif scope["method"] in UNSAFE_METHODS and not self.origin_allowed(headers, host):
            origin = headers.get("origin") or f"a {headers.get('sec-fetch-site')} page"
            problem = (
                403,
                "forbidden_origin",
                f"refused a {scope['method']} from {origin}: not this server's own origin, and not in RAG_CORS_ORIGINS",
            )
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, code, message = problem
        body = error_body(status, code, message, openai=is_openai_path(scope.get("path", "")))
        await JSONResponse(body, status_code=status)(scope, receive, send)

    def host_allowed(self, host: str) -> bool:
        name, _ = split_host(host)
        # An IP address cannot be rebound: a rebinding page always comes with its own domain name.
        return self.any_host or name in self.hosts or (bool(name) and is_ip(name))

    def origin_allowed(self, headers: Headers, host: str | None) -> bool:
        origin = headers.get("origin")
        if origin is None:
            # No Origin: not sent by a page's fetch or form, unless the browser says where it came from.
            return headers.get("sec-fetch-site") not in ("cross-site", "same-site")
        if origin.rstrip("/").lower() in self.origins:
            return True
        return host is not None and same_origin(origin, host)


def same_origin(origin: str, host: str) -> bool:
    """Whether a page at `origin` is served by this server as addressed by `host` (the web UI at /).
    Schemes are not compared: behind a TLS proxy the page is https while this server speaks http."""
    parts = urlsplit(origin.strip())
    try:
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    default = DEFAULT_PORTS[parts.scheme]
    host_name, host_port = split_host(host)
    return parts.hostname.lower() == host_name and (origin_port or default) == (host_port or default)
