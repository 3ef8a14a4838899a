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
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import ORT_WEB_VARIABLE
from .core import InferenceService
from .metrics import CONTENT_TYPE
from .protocol import ProtocolError, encode_infer, parse_infer

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
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff")


def ort_web_dir() -> Path:
    """Where onnxruntime-web's dist/ is: $CIFAR_PACK_ORT_WEB, else web/node_modules of the checkout."""
    configured = os.environ.get(ORT_WEB_VARIABLE)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist"


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(service: InferenceService) -> Starlette:
    """The ASGI app over ``service``; closing the app's lifespan closes the service's batchers."""
    api = HttpApi(service)
    routes = api.routes()

    async def protocol_error(request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, ProtocolError) else 500  # registered for ProtocolError only
        return error(status, str(exc), {"Retry-After": "1"} if status == 503 else None)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return error(status, f"no route {request.method} {request.url.path[:100]}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, service=service, routes=routes)],
        exception_handlers={ProtocolError: protocol_error, 404: not_found, 405: not_found},
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

    # -- Open Inference Protocol --------------------------------------------------------------
    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(self.service.server_metadata())

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def model_metadata(self, request: Request) -> Response:
        return JSONResponse(self.service.model_metadata(self.service.model(request.path_params["name"])))

    async def model_ready(self, request: Request) -> Response:
        m = self.service.model(request.path_params["name"])
        return JSONResponse({"name": m.name, "ready": True})

    async def model_config(self, request: Request) -> Response:
        return JSONResponse(self.service.model_config(self.service.model(request.path_params["name"])))

    async def model_statistics(self, request: Request) -> Response:
        return JSONResponse(self.service.model_statistics(self.service.model(request.path_params["name"])))

    async def infer(self, request: Request) -> Response:
        m = self.service.model(request.path_params["name"])
        body = await self.read_body(request)
        header_length = request.headers.get("inference-header-content-length")
        parsed = parse_infer(body, header_length, m.predictor.num_classes, self.service.limits.max_images)
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
            raise ProtocolError("top_k must be an integer") from None
        self.service.check_top_k(top_k)
        uploads = await self.read_uploads(request)
        return JSONResponse(await self.service.classify_uploads(uploads, top_k))

    async def read_uploads(self, request: Request) -> list[tuple[str, bytes]]:
        """(file name, bytes) of one image body, or of each multipart ``file`` field."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await self.read_body(request)
        if content_type in IMAGE_TYPES or content_type == "application/octet-stream":
            return [(request.query_params.get("filename", "upload"), body)]
        if content_type != "multipart/form-data":
            raise ProtocolError(
                f"unsupported Content-Type {content_type[:60]!r}: send multipart/form-data 'file' fields "
                "or one image as the body (image/png, image/jpeg, ...)",
                415,
            )

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        most = self.service.limits.max_images
        try:
            form = await Request(request.scope, replay).form(max_files=most, max_fields=most)
        except Exception as exc:  # python-multipart / Starlette raise several types for bad multipart
            raise ProtocolError(f"malformed multipart body ({str(exc)[:120]})") from None
        files = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
        if not files:
            raise ProtocolError("no 'file' fields in the multipart body")
        return [(f.filename or "upload", await f.read()) for f in files]

    async def read_body(self, request: Request) -> bytes:
        """The whole body, within the byte limit (413) and the time limit (408)."""
        limits = self.service.limits
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_request_bytes:
            raise ProtocolError(
                f"request body of {int(declared):,} bytes; the limit is {limits.max_request_bytes:,}", 413
            )
        chunks: list[bytes] = []
        size = 0

        async def collect() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_request_bytes:
                    raise ProtocolError(f"request body over the {limits.max_request_bytes:,}-byte limit", 413)
                chunks.append(chunk)

        try:
            # asyncio.timeout cancels in place; wait_for would start a task per request.
            async with asyncio.timeout(limits.body_timeout_s):
                await collect()
        except TimeoutError:
            raise ProtocolError(f"the request body did not arrive within {limits.body_timeout_s:g} s", 408) from None
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
            raise ProtocolError(f"no such page file: {name[:60]}", 404)
        return FileResponse(PAGE / name, media_type=PAGE_FILES[name], headers=PAGE_HEADERS)

    async def ort_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = ort_web_dir() / name
        if name not in ORT_FILES or not path.is_file():
            raise ProtocolError(
                f"onnxruntime-web's {name[:60]} is not installed here: run `npm install --ignore-scripts` in web/ "
                f"of the cifar-pack checkout, or set {ORT_WEB_VARIABLE} to its dist/ folder",
                404,
            )
        return FileResponse(path, media_type=ORT_FILES[name], headers=PAGE_HEADERS)


class Guard:
    """API key and per-endpoint metrics around every request, as plain ASGI middleware.

    (Starlette's BaseHTTPMiddleware runs each request through extra tasks and streams: here
    that cost more than the model for single-image requests.) The metric label is the route's
    template, never the raw path, so label values stay bounded.
    """

    def __init__(self, app: ASGIApp, service: InferenceService, routes: list[Route]):
        self.app, self.service, self.routes = app, service, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]
        public = scope["path"] == "/" or scope["path"].startswith(PUBLIC_PREFIXES)
        keys = [value for name, value in scope["headers"] if name == b"authorization"]
        # Two Authorization headers are ambiguous (a proxy's and a client's?): neither is taken.
        if not public and self.service.api_key and not (len(keys) == 1 and self.service.authorized(keys[0])):
            response = error(
                401, "missing or wrong API key: send 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"}
            )
            route = next((r.path for r in self.routes if r.matches(scope)[0] == Match.FULL), "unmatched")
            self.service.metrics.count_request(route, 401)
            return await response(scope, receive, send)

        async def send_and_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            matched = scope.get("route")  # set by Starlette's router once a route matched
            route = matched.path if matched is not None else "unmatched"
            self.service.metrics.count_request(route, status[0], time.perf_counter() - started)
