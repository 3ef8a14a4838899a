"""The HTTP transport: Starlette routes for the Open Inference Protocol, /predict, /metrics, the page.

A thin layer over ``core.InferenceService``: it reads bodies within the limits and parses and
encodes the wire format (``protocol.py``); ``guard.py`` checks Host, Origin and the API key and
counts requests around it; ``http_status.py`` turns the service's errors into statuses; the
models, batchers, metrics and limits are the service's.

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
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from . import errors
from .config import LOCAL_HOSTS, MAX_CONTROL_BYTES, ORT_WEB_VARIABLE
from .core import InferenceService
from .guard import Guard
from .http_status import HTTP_STATUS, error_response
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
OFF_LOOP_BYTES = 64 * 1024  # infer bodies larger than this are parsed in the decode pool
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff")


def ort_web_dir() -> Path:
    """Where onnxruntime-web's dist/ is: $CIFAR_PACK_ORT_WEB, else web/node_modules of the checkout."""
    configured = os.environ.get(ORT_WEB_VARIABLE)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist"


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


def load_parameters(body: bytes) -> list[str]:
    """The parameter names of a Triton load request body (``{"parameters": {...}}``, or empty)."""
    if not body.strip():
        return []
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        raise errors.InvalidInput("the load request's body is not JSON") from None
    parameters = request.get("parameters", {}) if isinstance(request, dict) else None
    if not isinstance(parameters, dict):
        raise errors.InvalidInput('the load request\'s body must be {"parameters": {...}}')
    return list(parameters)


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
        body = await self.read_body(request, MAX_CONTROL_BYTES)
        await self.service.load(request.path_params["name"], load_parameters(body))
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
