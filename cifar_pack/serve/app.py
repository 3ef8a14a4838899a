"""The HTTP layer: Starlette routes for the Open Inference Protocol, /predict, /metrics, model files.

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
import hmac
import io
import logging
import os
import time
from pathlib import Path

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Match, Route

from .. import __version__
from .. import images as img_mod
from ..errors import InputError
from .batcher import DynamicBatcher, QueueFull
from .models import ServedModel
from .protocol import ProtocolError, encode_infer, parse_infer

log = logging.getLogger(__name__)

WEB = Path(__file__).resolve().parents[1] / "web"  # the page: index.html, app.mjs, preprocess.mjs, style.css
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


def ort_web_dir() -> Path:
    """Where onnxruntime-web's dist/ is: $CIFAR_PACK_ORT_WEB, else web/node_modules of the checkout."""
    configured = os.environ.get("CIFAR_PACK_ORT_WEB")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "web" / "node_modules" / "onnxruntime-web" / "dist"


IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff")
EXTENSIONS = ["binary_tensor_data", "classification", "model_repository"]


class Limits:
    """Per-request bounds: body bytes (413), images per request (413), seconds to receive a body (408)."""

    def __init__(self, max_request_bytes: int = 32 * 2**20, max_images: int = 1024, body_timeout_s: float = 30.0):
        self.max_request_bytes, self.max_images, self.body_timeout_s = max_request_bytes, max_images, body_timeout_s


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(
    models: dict[str, ServedModel],
    max_batch_size: int = 64,
    max_queue_delay_ms: float = 2.0,
    max_queue_images: int = 4096,
    limits: Limits | None = None,
    api_key: str | None = None,
) -> Starlette:
    """The ASGI app serving ``models`` (name -> ServedModel). ``api_key``: require it as a Bearer token."""
    limits = limits or Limits()
    registry = CollectorRegistry()
    requests = Counter(
        "cifar_pack_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=registry
    )
    latency = Histogram("cifar_pack_request_seconds", "Request latency, seconds", ["endpoint"], registry=registry)
    batch_sizes = Histogram(
        "cifar_pack_batch_size",
        "Images per onnxruntime call",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        registry=registry,
    )
    infer_seconds = Histogram("cifar_pack_inference_seconds", "onnxruntime call, seconds", registry=registry)
    depth = Gauge("cifar_pack_queue_depth", "Images waiting for a batch", ["model"], registry=registry)

    def on_batch(size: int, seconds: float) -> None:
        batch_sizes.observe(size)
        infer_seconds.observe(seconds)

    batchers = {
        name: DynamicBatcher(m.predictor.predict_proba, max_batch_size, max_queue_delay_ms, max_queue_images, on_batch)
        for name, m in models.items()
    }
    for name, batcher in batchers.items():
        depth.labels(name).set_function(lambda b=batcher: b.waiting)
    default = next(iter(models.values()))

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_request_bytes:
            raise ProtocolError(
                f"request body of {int(declared):,} bytes; the limit is {limits.max_request_bytes:,}", 413
            )
        chunks, size = [], 0

        async def collect():
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_request_bytes:
                    raise ProtocolError(f"request body over the {limits.max_request_bytes:,}-byte limit", 413)
                chunks.append(chunk)

        try:
            # asyncio.timeout (3.11+) cancels in place; wait_for would start a task per request.
            if hasattr(asyncio, "timeout"):
                async with asyncio.timeout(limits.body_timeout_s):
                    await collect()
            else:
                await asyncio.wait_for(collect(), limits.body_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            raise ProtocolError(f"the request body did not arrive within {limits.body_timeout_s:g} s", 408) from None
        return b"".join(chunks)

    def model_or_404(name: str) -> ServedModel:
        if name not in models:
            raise ProtocolError(f"unknown model '{name[:80]}'; served: {', '.join(models)}", 404)
        return models[name]

    async def run(batcher: DynamicBatcher, images: np.ndarray) -> np.ndarray:
        try:
            return await batcher.infer(images)
        except QueueFull as exc:
            raise ProtocolError(f"server busy: {exc}; retry shortly", 503) from None

    # -- Open Inference Protocol ----------------------------------------------------------
    async def server_metadata(request):
        return JSONResponse({"name": "cifar-pack", "version": __version__, "extensions": EXTENSIONS})

    async def live(request):
        return JSONResponse({"live": True})

    async def ready(request):
        return JSONResponse({"ready": True})

    async def model_metadata(request):
        m = model_or_404(request.path_params["name"])
        return JSONResponse(
            {
                "name": m.name,
                "versions": [m.version],
                "platform": "onnxruntime_onnx",
                "inputs": [{"name": m.predictor.input_name, "datatype": "UINT8", "shape": [-1, 32, 32, 3]}],
                "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, m.predictor.num_classes]}],
            }
        )

    async def model_ready(request):
        m = model_or_404(request.path_params["name"])
        return JSONResponse({"name": m.name, "ready": True})

    async def infer(request):
        m = model_or_404(request.path_params["name"])
        body = await read_body(request)
        parsed = parse_infer(
            body, request.headers.get("inference-header-content-length"), m.predictor.num_classes, limits.max_images
        )
        probs = await run(batchers[m.name], parsed.images)
        content, headers = encode_infer(m.name, m.version, parsed, probs, m.predictor.class_names)
        return Response(content, headers=headers)

    # -- /predict: image files for people and curl ------------------------------------------
    async def predict(request):
        m = default
        try:
            top_k = int(request.query_params.get("top_k", "1"))
        except ValueError:
            raise ProtocolError("top_k must be an integer") from None
        if not 1 <= top_k <= m.predictor.num_classes:
            raise ProtocolError(f"top_k must be in 1..{m.predictor.num_classes}")
        uploads = await read_uploads(request)
        decoded = await run_in_threadpool(lambda: [decode(name, data) for name, data in uploads])
        good = [arr for arr in decoded if isinstance(arr, np.ndarray)]
        if not good:
            reasons = "; ".join(d for d in decoded if isinstance(d, str))
            raise ProtocolError(f"no readable image: {reasons}", 415 if "not a readable image" in reasons else 400)
        probs = iter(await run(batchers[m.name], np.stack(good)))
        items = []
        for (name, _), arr in zip(uploads, decoded):
            if isinstance(arr, np.ndarray):
                items.append({"path": name} | m.predictor.describe(next(probs), top_k))
            else:
                items.append({"path": name, "error": arr})
        return JSONResponse(items)

    async def read_uploads(request: Request) -> list[tuple[str, bytes]]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await read_body(request)
        if content_type in IMAGE_TYPES or content_type == "application/octet-stream":
            return [(request.query_params.get("filename", "upload"), body)]
        if content_type != "multipart/form-data":
            raise ProtocolError(
                f"unsupported Content-Type {content_type[:60]!r}: send multipart/form-data 'file' fields "
                "or one image as the body (image/png, image/jpeg, ...)",
                415,
            )

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=limits.max_images, max_fields=limits.max_images)
        except Exception as exc:  # python-multipart / Starlette raise several types for bad multipart
            raise ProtocolError(f"malformed multipart body ({str(exc)[:120]})") from None
        files = [v for k, v in form.multi_items() if k == "file" and hasattr(v, "read")]
        if not files:
            raise ProtocolError("no 'file' fields in the multipart body")
        return [(f.filename or "upload", await f.read()) for f in files]

    def decode(name: str, data: bytes):
        """The Predictor's preprocessing on uploaded bytes: (32, 32, 3) uint8, or the error text."""
        try:
            return img_mod.to_model_input(img_mod.decode(io.BytesIO(data), name))
        except InputError as exc:
            return str(exc)

    # -- metrics and model files --------------------------------------------------------------
    async def metrics(request):
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def model_file(request):
        return FileResponse(default.path, media_type="application/octet-stream", filename=default.path.name)

    async def model_json(request):
        return JSONResponse(default.sidecar)

    # -- the page (docs/serving.md#the-web-page) ------------------------------------------------
    async def page(request):
        return FileResponse(WEB / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    async def page_file(request):
        name = request.path_params["name"]
        if name not in PAGE_FILES:
            raise ProtocolError(f"no such page file: {name[:60]}", 404)
        return FileResponse(WEB / name, media_type=PAGE_FILES[name], headers=PAGE_HEADERS)

    async def ort_file(request):
        name = request.path_params["name"]
        path = ort_web_dir() / name
        if name not in ORT_FILES or not path.is_file():
            raise ProtocolError(
                f"onnxruntime-web's {name[:60]} is not installed here: run `npm install --ignore-scripts` in web/ "
                "of the cifar-pack checkout, or set CIFAR_PACK_ORT_WEB to its dist/ folder",
                404,
            )
        return FileResponse(path, media_type=ORT_FILES[name], headers=PAGE_HEADERS)

    routes = [
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/versions/{version}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/model.onnx", model_file),
        Route("/model.json", model_json),
        Route("/", page),
        Route("/static/{name}", page_file),
        Route("/ort/{name}", ort_file),
    ]

    async def protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
        return error(exc.status, str(exc), {"Retry-After": "1"} if exc.status == 503 else None)

    async def not_found(request: Request, exc) -> JSONResponse:
        return error(exc.status_code, f"no route {request.method} {request.url.path[:100]}")

    class Guard:
        """API key and per-endpoint metrics around every request, as plain ASGI middleware.

        (Starlette's BaseHTTPMiddleware runs each request through extra tasks and streams: here
        that cost more than the model for single-image requests.) The metric label is the route's
        template, never the raw path, so label values stay bounded.
        """

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            started, status = time.perf_counter(), [500]
            # The page and its files are public (the page asks for the key); the API is not.
            public = scope["path"] == "/" or scope["path"].startswith(("/v2/health/", "/static/", "/ort/"))
            if api_key and not public:
                sent = dict(scope["headers"]).get(b"authorization", b"")
                if not hmac.compare_digest(sent, f"Bearer {api_key}".encode()):  # constant time
                    response = error(
                        401,
                        "missing or wrong API key: send 'Authorization: Bearer <key>'",
                        {"WWW-Authenticate": "Bearer"},
                    )
                    route = next((r.path for r in routes if r.matches(scope)[0] == Match.FULL), "unmatched")
                    requests.labels(route, "401").inc()
                    return await response(scope, receive, send)

            async def send_and_count(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_and_count)
            finally:
                matched = scope.get("route")  # set by Starlette's router once a route matched
                route = matched.path if matched is not None else "unmatched"
                requests.labels(route, str(status[0])).inc()
                latency.labels(route).observe(time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        for batcher in batchers.values():
            await batcher.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard)],
        exception_handlers={ProtocolError: protocol_error, 404: not_found, 405: not_found},
        lifespan=lifespan,
    )
    app.state.models = models
    return app


def api_key_from_env() -> str | None:
    return os.environ.get("CIFAR_PACK_API_KEY") or None
