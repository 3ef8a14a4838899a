"""Who may ask, around every HTTP request: the Host and Origin checks, the API key, security headers
and the per-route request metrics, as plain ASGI middleware."""

from __future__ import annotations

import asyncio
import re
import time

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors
from .config import LOCAL_HOSTS
from .core import InferenceService
from .http_status import INTERNAL_ERROR, error_response

PUBLIC_PREFIXES = ("/v2/health/", "/static/", "/ort/")  # and "/": the page asks for the key itself


class Guard:
    """Host and Origin checks, the API key, security headers and per-endpoint metrics around every
    request, as plain ASGI middleware.

    (Starlette's BaseHTTPMiddleware runs each request through extra tasks and streams: here
    that cost more than the model for single-image requests.) The metric label is the route's
    template, never the raw path, so label values stay bounded.
    """

    def __init__(
        self, app: ASGIApp, service: InferenceService, routes: list[Route], allowed_hosts: frozenset[str] | None
    ):
        self.app, self.service, self.routes, self.allowed_hosts = app, service, routes, allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [0]  # 0: no response started yet
        refused = self.refusal(scope)
        if refused is not None:
            response = error_response(refused)
            route = next((r.path for r in self.routes if r.matches(scope)[0] == Match.FULL), "unmatched")
            self.service.metrics.count_request(route, response.status_code)
            return await response(scope, receive, send_with_security_headers(send))

        async def send_and_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                add_security_headers(message)
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        except asyncio.CancelledError:
            # SIGTERM's grace period ran out with this request unanswered: say so in JSON (uvicorn
            # would send a plain-text 500 and log a traceback). The task ends here, answered.
            if status[0]:
                raise
            response = error_response(errors.Unavailable("the server is shutting down; retry on another replica"))
            status[0] = response.status_code
            await response(scope, receive, send)
        finally:
            matched = scope.get("route")  # set by Starlette's router once a route matched
            route = matched.path if matched is not None else "unmatched"
            self.service.metrics.count_request(route, status[0] or INTERNAL_ERROR, time.perf_counter() - started)

    def refusal(self, scope: Scope) -> errors.ServeError | None:
        """Why a request is refused before any route runs (Forbidden, Unauthenticated, a bad Host), or None.

        Host: a name this server answers to (a page on another site that rebinds its DNS name to
        127.0.0.1 still sends its own name). Origin: a browser's POST from another origin is
        refused even though it cannot read the answer ("simple" cross-origin requests are sent
        without asking first); same-origin requests and clients that send no Origin pass.
        """
        headers = dict(scope["headers"])  # a repeated Origin keeps the last; it is checked below
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else ""
        if not HOST_HEADER.fullmatch(host.strip().lower()):
            # HTTP/1.1 wants exactly one Host (RFC 9112, 3.2); an empty, missing, repeated or
            # malformed one ("[::1]evil.example") could otherwise pass the name check below.
            return errors.InvalidInput(f"one Host header (name[:port]) is required, got {len(hosts)}: {host[:80]!r}")
        if self.allowed_hosts is not None and host_name(host) not in self.allowed_hosts:
            return errors.Forbidden(f"Host {host[:80]!r} is not served here; start the server with --allowed-host NAME")
        origin = headers.get(b"origin")
        if origin is not None and scope["method"] not in ("GET", "HEAD") and origin_netloc(origin) != host.lower():
            return errors.Forbidden(f"cross-origin {scope['method']} from {origin[:80].decode('latin-1')!r} refused")
        public = scope["path"] == "/" or scope["path"].startswith(PUBLIC_PREFIXES)
        keys = [value for name, value in scope["headers"] if name == b"authorization"]
        # Two Authorization headers are ambiguous (a proxy's and a client's?): neither is taken.
        if not public and self.service.api_key and not (len(keys) == 1 and self.service.authorized(keys[0])):
            return errors.Unauthenticated()
        return None


# On every response that has not set its own (the page's routes set a CSP that lets it run):
# JSON echoes file and class names, so nothing may sniff, frame or embed it.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


def add_security_headers(message: Message) -> None:
    present = {name.lower() for name, _ in message.get("headers", [])}
    message["headers"] = [*message.get("headers", []), *(h for h in SECURITY_HEADERS if h[0] not in present)]


def send_with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            add_security_headers(message)
        await send(message)

    return wrapped


def served_hosts(bind: str, allowed: list[str], loopback: bool) -> frozenset[str] | None:
    """The Host names served: loopback binds answer to local names and ``--allowed-host`` ones;
    a server bound to another address answers to any name unless ``--allowed-host`` lists them
    (its clients use names this process cannot know; the API key guards it). "*": any."""
    if "*" in allowed:
        return None
    names = {host_name(a) for a in allowed}
    if loopback:  # the bind address itself too: `--host 127.0.0.2` answers to "Host: 127.0.0.2:PORT"
        bound = f"[{bind.lower()}]" if ":" in bind else bind.lower()
        return LOCAL_HOSTS | names | {bound}
    return LOCAL_HOSTS | names | {host_name(bind)} if allowed else None


# A Host header: a bracketed IPv6 address or a name/IPv4 address, then an optional port.
HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:[0-9]{1,5})?")


def host_name(host: str) -> str:
    """A Host header's name, lower case, without its port: "[::1]:8000" -> "[::1]", "Local:80" -> "local"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def origin_netloc(origin: bytes) -> str:
    """ "http://127.0.0.1:8000" -> "127.0.0.1:8000" (lower case); "null" and garbage -> ""."""
    text = origin.decode("latin-1").strip().lower()
    return text.split("://", 1)[1].rstrip("/") if "://" in text else ""
