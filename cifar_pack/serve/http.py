"""The HTTP transport: Starlette routes for the Open Inference Protocol, /predict, /metrics, the page.

A thin layer over ``core.InferenceService``: it reads bodies within the limits, parses and
encodes the wire format (``protocol.py``), checks the API key and counts requests; the models,
batchers, metrics and limits are the service's.

Why Starlette and not FastAPI: every route here reads raw bodies (binary tensors, images,
multipart) and writes JSON or bytes by hand, so FastAPI's pydantic validation would add import
time (pydantic costs ~75 ms) and nothing else; Starlette is the ASGI toolkit FastAPI is built on.

Every error is JSON ``{"error": "..."}`` with a 4xx status that names the problem; nothing a
client sends can produce a 500 or stop the server (tests/test_serve.py sends a matrix of broken
requests and then checks the server still answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors
from .config import LOCAL_HOSTS, ORT_WEB_VARIABLE
from .core import InferenceService
from .metrics import CONTENT_TYPE
from .models import ServedModel
from .protocol import encode_infer, parse_infer

PAGE = Path(__file__).resolve().parent / "page"  # index.html, app.mjs, preprocess.mjs, style.css
PAGE_FILES = {"app.mjs": "text/javascript", "preprocess.mjs": "text/javascript", "style.css": "text/css"}
# onnxruntime-web's files for browser mode: the single-threaded wasm build (no SharedArrayBuffer).
ORT_FILES = {
    "ort.wasm.min.mjs": "text/javascript",
    "ort-wasm-simd-threaded.mjs": "text/javascript",
    "ort-wasm-simd-threaded.wasm": "application/wasm",
}
# Only this origin; wasm compilation is allowed ('wasm-unsafe-eval'), JavaScript eval is not.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
    "img-src 'self' blob: data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
PUBLIC_PREFIXES = ("/v2/health/", "/static/", "/ort/")  # and "/": the page asks for the key itself
OFF_LOOP_BYTES = 64 * 1024  # infer bodies larger than this are parsed in the decode pool
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff")


def ort_web_dir() -> Path:
    """Where onnxruntime-web's dist/ is: $CIFAR_PACK_ORT_WEB, else web/node_modules of the checkout."""
    configured = os.environ.get(ORT_WEB_VARIABLE)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist"


# The service's errors -> HTTP statuses (errors.status_of: the nearest listed base class), and the
# headers some of them carry. Every status this transport sends is in these two tables.
HTTP_STATUS: dict[type[errors.ServeError], int] = {
    errors.ServeError: 400,
    errors.UnsupportedMedia: 415,
    errors.MethodNotAllowed: 405,
    errors.TooLarge: 413,
    errors.HeadTooLarge: 431,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.Unavailable: 503,
    errors.RequestTimeout: 408,
    errors.ClientGone: 499,
}
HTTP_HEADERS: dict[type[errors.ServeError], dict[str, str]] = {
    errors.ServeError: {},
    errors.Unauthenticated: {"WWW-Authenticate": "Bearer"},
    errors.Unavailable: {"Retry-After": "1"},
    # The body never came: the connection must not be kept for another request (a trickling client
    # would hold one of --max-connections for as long as it likes).
    errors.RequestTimeout: {"Connection": "close"},
}
INTERNAL_ERROR = 500  # what Starlette answers an exception no table lists: counted as such in /metrics


def error_response(exc: errors.ServeError) -> JSONResponse:
    """The one way a ``ServeError`` leaves over HTTP: ``{"error": message}`` with its status and headers."""
    headers = errors.status_of(exc, HTTP_HEADERS)
    return JSONResponse({"error": str(exc)}, status_code=errors.status_of(exc, HTTP_STATUS), headers=headers or None)


def create_app(
    service: InferenceService,
    allowed_hosts: frozenset[str] | None = LOCAL_HOSTS,
    before_close: list[Callable[[], Awaitable[None]]] | None = None,
) -> Starlette:
    """The ASGI app over ``service``; closing the app's lifespan closes the service's batchers.

    ``allowed_hosts``: the Host header values (without port, lower case) served; None: any.
    ``before_close``: awaited first when the app shuts down (after uvicorn has drained HTTP), while
    the batchers still run: another transport's drain goes here, so its calls in flight finish.
    """
    api = HttpApi(service)
    routes = api.routes()

    async def serve_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.ServeError)  # registered for ServeError only
        return error_response(exc)

    async def no_route(request: Request, exc: Exception) -> Response:
        # Starlette's router raises HTTPException for a path no route matches, or a method it lacks.
        wrong_method = isinstance(exc, HTTPException) and exc.status_code == HTTP_STATUS[errors.MethodNotAllowed]
        kind = errors.MethodNotAllowed if wrong_method else errors.NotFound
        return error_response(kind(f"no route {request.method} {request.url.path[:100]}"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for drain in before_close or []:
            await drain()
        await service.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, service=service, routes=routes, allowed_hosts=allowed_hosts)],
        exception_handlers={errors.ServeError: serve_error, HTTPException: no_route},
        lifespan=lifespan,
    )
    app.state.service = service
    return app


class HttpApi:
    """The routes, each a few lines over the service."""

    def __init__(self, service: InferenceService):
        self.service = service

    def routes(self) -> list[Route]:
        return [
            Route("/v2", self.server_metadata),
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.ready),
            Route("/v2/models/{name}", self.model_metadata),
            Route("/v2/models/{name}/versions/{version}", self.model_metadata),
            Route("/v2/models/{name}/ready", self.model_ready),
            Route("/v2/models/{name}/config", self.model_config),
            Route("/v2/models/{name}/stats", self.model_statistics),
            Route("/v2/models/{name}/infer", self.infer, methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}/infer", self.infer, methods=["POST"]),
            Route("/v2/repository/index", self.repository_index, methods=["POST"]),
            Route("/v2/repository/models/{name}/load", self.load, methods=["POST"]),
            Route("/v2/repository/models/{name}/unload", self.unload, methods=["POST"]),
            Route("/predict", self.predict, methods=["POST"]),
            Route("/metrics", self.metrics),
            Route("/model.onnx", self.model_file),
            Route("/model.json", self.model_json),
            Route("/", self.page),
            Route("/static/{name}", self.page_file),
            Route("/ort/{name}", self.ort_file),
        ]

    def model(self, request: Request) -> ServedModel:
        """The model the path names (``/v2/models/{name}[/versions/{version}]``); 404 if not served."""
        return self.service.model(request.path_params["name"], request.path_params.get("version"))

    # -- Open Inference Protocol --------------------------------------------------------------
    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(self.service.server_metadata())

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def model_metadata(self, request: Request) -> Response:
        return JSONResponse(self.service.model_metadata(self.model(request)))

    async def model_ready(self, request: Request) -> Response:
        m = self.model(request)
        return JSONResponse({"name": m.name, "ready": True})

    async def model_config(self, request: Request) -> Response:
        return JSONResponse(self.service.model_config(self.model(request)))

    async def model_statistics(self, request: Request) -> Response:
        return JSONResponse(self.service.model_statistics(self.model(request)))

    async def infer(self, request: Request) -> Response:
        m = self.model(request)
        header_length = request.headers.get("inference-header-content-length")
        limits = self.service.limits
        # All JSON (no binary part): parsing costs ~50 ms a MB, so JSON bodies have a smaller limit,
        # and large ones are parsed in the decode pool, not on the event loop.
        body = await self.read_body(request, limits.max_json_bytes if header_length is None else None)
        args = (body, header_length, m.predictor.num_classes, limits.max_images)
        if header_length is None and len(body) > OFF_LOOP_BYTES:
            parsed = await self.service.decoder.run(parse_infer, *args)
        else:
            parsed = parse_infer(*args)
        probs = await self.service.infer(m, parsed.images)
        content, headers = encode_infer(m.name, m.version, parsed, probs, m.predictor.class_names)
        return Response(content, headers=headers)

    # -- model control: Triton's model repository extension -----------------------------------
    async def repository_index(self, request: Request) -> Response:
        return JSONResponse(self.service.repository_index())

    async def load(self, request: Request) -> Response:
        await self.service.load(request.path_params["name"])
        return JSONResponse({})

    async def unload(self, request: Request) -> Response:
        await self.service.unload(request.path_params["name"])
        return JSONResponse({})

    # -- /predict: image files for people and curl --------------------------------------------
    async def predict(self, request: Request) -> Response:
        try:
            top_k = int(request.query_params.get("top_k", "1"))
        except ValueError:
            raise errors.InvalidInput("top_k must be an integer") from None
        self.service.check_top_k(top_k)
        uploads = await self.read_uploads(request)
        return JSONResponse(await self.service.classify_uploads(uploads, top_k, request.is_disconnected))

    async def read_uploads(self, request: Request) -> list[tuple[str, bytes]]:
        """(file name, bytes) of one image body, or of each multipart ``file`` field."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await self.read_body(request)
        if content_type in IMAGE_TYPES or content_type == "application/octet-stream":
            return [(request.query_params.get("filename", "upload"), body)]
        if content_type != "multipart/form-data":
            raise errors.UnsupportedMedia(
                f"unsupported Content-Type {content_type[:60]!r}: send multipart/form-data 'file' fields "
                "or one image as the body (image/png, image/jpeg, ...)"
            )

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        most = self.service.limits.max_images
        try:
            form = await Request(request.scope, replay).form(max_files=most, max_fields=most)
        except Exception as exc:  # python-multipart / Starlette raise several types for bad multipart
            raise errors.InvalidInput(f"malformed multipart body ({str(exc)[:120]})") from None
        files = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
        if not files:
            raise errors.InvalidInput("no 'file' fields in the multipart body")
        return [(f.filename or "upload", await f.read()) for f in files]

    async def read_body(self, request: Request, most: int | None = None) -> bytes:
        """The whole body, within ``most`` bytes (default: the request limit; 413) and the time limit (408)."""
        limits = self.service.limits
        most = min(most or limits.max_request_bytes, limits.max_request_bytes)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > most:
            raise errors.TooLarge(f"request body of {int(declared):,} bytes; the limit is {most:,}")
        chunks: list[bytes] = []
        size = 0

        async def collect() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > most:
                    raise errors.TooLarge(f"request body over the {most:,}-byte limit")
                chunks.append(chunk)

        try:
            # asyncio.timeout cancels in place; wait_for would start a task per request.
            async with asyncio.timeout(limits.body_timeout_s):
                await collect()
        except TimeoutError:
            raise errors.RequestTimeout(f"the request body did not arrive within {limits.body_timeout_s:g} s") from None
        return b"".join(chunks)

    # -- metrics, model files and the page (docs/serving.md#the-web-page) ----------------------
    async def metrics(self, request: Request) -> Response:
        return Response(self.service.metrics.exposition(), media_type=CONTENT_TYPE)

    async def model_file(self, request: Request) -> Response:
        path = self.service.default.path
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    async def model_json(self, request: Request) -> Response:
        return JSONResponse(self.service.default.sidecar)

    async def page(self, request: Request) -> Response:
        return FileResponse(PAGE / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    async def page_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PAGE_FILES:
            raise errors.NotFound(f"no such page file: {name[:60]}")
        return FileResponse(PAGE / name, media_type=PAGE_FILES[name], headers=PAGE_HEADERS)

    async def ort_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = ort_web_dir() / name
        if name not in ORT_FILES or not path.is_file():
            raise errors.NotFound(
                f"onnxruntime-web's {name[:60]} is not installed here: run `npm install --ignore-scripts` in web/ "
                f"of the cifar-pack checkout, or set {ORT_WEB_VARIABLE} to its dist/ folder"
            )
        return FileResponse(path, media_type=ORT_FILES[name], headers=PAGE_HEADERS)


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
