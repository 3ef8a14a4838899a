"""The service core, transport-free: what KServe calls the data plane.

It owns the served models, one dynamic batcher per model, the per-request limits, the API key
check and the metrics; transports (``http.py`` today) only translate their wire format to these
calls and back. Errors are ``ProtocolError`` with an HTTP status; another transport maps the
status to its own codes (404 -> NOT_FOUND, 503 -> UNAVAILABLE, ...).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable

import numpy as np

from .. import __version__
from ..runtime.errors import InputError
from ..runtime.images import decode_bytes, resolve_max_pixels
from .batcher import DynamicBatcher, QueueFull
from .config import DEFAULT_BATCHING, DEFAULT_LIMITS, Batching, Limits
from .metrics import ServeMetrics
from .models import ServedModel
from .protocol import ProtocolError

EXTENSIONS = ["binary_tensor_data", "classification", "model_repository"]


def _waiting(batcher: DynamicBatcher) -> Callable[[], float]:
    """The queue-depth gauge's reading for one batcher."""
    return lambda: batcher.waiting


class InferenceService:
    """Serve ``models`` (name -> ServedModel); the first is the default for ``/predict`` and the page.

    Args:
        batching: dynamic batching settings, shared by every transport's requests.
        limits: per-request bounds (transports enforce the body ones while reading).
        api_key: require it from every client of the API (``authorized``); None: no key.
        max_pixels: refuse uploaded images larger than this (default as ``Predictor``'s).
    """

    def __init__(
        self,
        models: dict[str, ServedModel],
        batching: Batching = DEFAULT_BATCHING,
        limits: Limits = DEFAULT_LIMITS,
        api_key: str | None = None,
        max_pixels: int | None = None,
    ):
        if not models:
            raise ValueError("no models to serve")
        self.models, self.limits, self.api_key = models, limits, api_key
        self.max_pixels = resolve_max_pixels(max_pixels)
        self.metrics = ServeMetrics()
        self.batchers = {
            name: DynamicBatcher(
                m.predictor.predict_proba,
                batching.max_batch_size,
                batching.max_queue_delay_ms,
                batching.max_queue_images,
                self.metrics.on_batch,
            )
            for name, m in models.items()
        }
        for name, batcher in self.batchers.items():
            self.metrics.watch_queue(name, _waiting(batcher))
        self.default = next(iter(models.values()))

    def authorized(self, credentials: bytes) -> bool:
        """Whether an ``Authorization`` value carries the key (constant time); True without a key."""
        return not self.api_key or hmac.compare_digest(credentials, f"Bearer {self.api_key}".encode())

    def model(self, name: str) -> ServedModel:
        if name not in self.models:
            raise ProtocolError(f"unknown model '{name[:80]}'; served: {', '.join(self.models)}", 404)
        return self.models[name]

    async def infer(self, model: ServedModel, images: np.ndarray) -> np.ndarray:
        """(N, 32, 32, 3) uint8 -> (N, C) float32 through the model's batcher; 503 when its queue is full."""
        try:
            return await self.batchers[model.name].infer(images)
        except QueueFull as exc:
            raise ProtocolError(f"server busy: {exc}; retry shortly", 503) from None

    def check_top_k(self, top_k: int) -> int:
        """``top_k`` if the default model has that many classes; else 400, before any upload is read."""
        if not 1 <= top_k <= self.default.predictor.num_classes:
            raise ProtocolError(f"top_k must be in 1..{self.default.predictor.num_classes}")
        return top_k

    async def classify_uploads(self, uploads: list[tuple[str, bytes]], top_k: int) -> list[dict]:
        """Encoded image files -> one ``{"path", ...prediction}`` or ``{"path", "error"}`` each, in order."""
        m = self.default
        self.check_top_k(top_k)
        # Decoding is CPU work under the GIL in part: off the event loop, so other requests go on.
        decoded = await asyncio.to_thread(lambda: [self._decode(name, data) for name, data in uploads])
        good = [arr for arr in decoded if isinstance(arr, np.ndarray)]
        if not good:
            reasons = "; ".join(d for d in decoded if isinstance(d, str))
            raise ProtocolError(f"no readable image: {reasons}", 415 if "not a readable image" in reasons else 400)
        probs = iter(await self.infer(m, np.stack(good)))
        return [
            {"path": name} | m.predictor.describe(next(probs), top_k)
            if isinstance(arr, np.ndarray)
            else {"path": name, "error": arr}
            for (name, _), arr in zip(uploads, decoded)
        ]

    def _decode(self, name: str, data: bytes) -> np.ndarray | str:
        """The Predictor's preprocessing on uploaded bytes: (32, 32, 3) uint8, or the error text."""
        try:
            return decode_bytes(data, name, self.max_pixels)
        except InputError as exc:
            return str(exc)

    def server_metadata(self) -> dict:
        return {"name": "cifar-pack", "version": __version__, "extensions": EXTENSIONS}

    def model_metadata(self, m: ServedModel) -> dict:
        return {
            "name": m.name,
            "versions": [m.version],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": m.predictor.input_name, "datatype": "UINT8", "shape": [-1, 32, 32, 3]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, m.predictor.num_classes]}],
        }

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
