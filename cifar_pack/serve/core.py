"""The service core, transport-free: what KServe calls the data plane.

It owns the served models, one dynamic batcher per model, the per-request limits, the API key
check and the metrics (model control is its mixin, ``control.py``; per-model counters are
``statistics.py``); transports (``http.py``, ``grpc.py``) only translate their wire format to
these calls and back. Errors are the typed ``errors.ServeError`` kinds (``NotFound``, ``InvalidInput``,
``Unavailable``, ...); each transport maps a kind to its own status once.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable

import numpy as np

from .. import __version__
from ..runtime.images import resolve_max_pixels
from .batcher import DynamicBatcher, QueueFull
from .config import DEFAULT_BATCHING, DEFAULT_LIMITS, Batching, Limits
from .control import RepositoryControl
from .decoding import DecodePool
from .errors import InvalidInput, NotFound, Unavailable, UnsupportedMedia
from .metrics import ServeMetrics
from .models import ServedModel, model_metadata, warm_up
from .repository import Repository, triton_config
from .statistics import Statistics

EXTENSIONS = ["binary_tensor_data", "classification", "model_repository", "statistics", "model_configuration"]


def _waiting(batcher: DynamicBatcher) -> Callable[[], float]:
    """The queue-depth gauge's reading for one batcher."""
    return lambda: batcher.waiting


class InferenceService(RepositoryControl):
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
        repository: Repository | None = None,
    ):
        if not models:
            raise ValueError("no models to serve")
        self.batching, self.limits, self.api_key, self.repository = batching, limits, api_key, repository
        self.max_pixels = resolve_max_pixels(max_pixels)
        self.decoder = DecodePool(self.max_pixels, limits)
        self.metrics = ServeMetrics()
        self.models: dict[str, ServedModel] = {}
        self.batchers: dict[str, DynamicBatcher] = {}
        self.stats: dict[str, Statistics] = {}
        self.failures: dict[str, str] = dict(repository.failures) if repository else {}
        self._loading = asyncio.Lock()  # model control: loads run one at a time
        for model in models.values():
            self._add(warm_up(model, batching.max_batch_size))
        self.default = next(iter(self.models.values()))

    def _add(self, model: ServedModel) -> DynamicBatcher | None:
        """Serve ``model`` (already warm) from now on; the batcher it replaces, if any, to drain."""
        b = self.batching
        stats = self.stats[model.name] = Statistics()

        def on_batch(size: int, seconds: float) -> None:
            self.metrics.on_batch(size, seconds)
            stats.on_batch(size, seconds)

        batcher = DynamicBatcher(
            model.predictor.predict_proba,
            b.max_batch_size,
            b.max_queue_delay_ms,
            b.max_queue_images,
            on_batch,
            b.instances,
        )
        old = self.batchers.get(model.name)
        self.models[model.name], self.batchers[model.name] = model, batcher
        self.failures.pop(model.name, None)
        self.metrics.watch_queue(model.name, _waiting(batcher))
        return old

    def authorized(self, credentials: bytes) -> bool:
        """Whether an ``Authorization`` value carries the key (constant time); True without a key.

        The scheme is case-insensitive (RFC 7235: "bearer" is "Bearer"); the key is compared exactly.
        """
        if not self.api_key:
            return True
        scheme, _, token = credentials.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key.encode())

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """The served model ``name``; with ``version``, only if that is the version served (else NotFound)."""
        if name not in self.models:
            raise NotFound(f"unknown model {name[:80]!r}; served: {', '.join(self.models)}")
        m = self.models[name]
        if version not in (None, "", m.version):
            raise NotFound(f"model {name!r} has no version {version[:20]!r}; served: {m.version}")
        return m

    async def infer(self, model: ServedModel, images: np.ndarray) -> np.ndarray:
        """(N, 32, 32, 3) uint8 -> (N, C) float32 through the model's batcher; Unavailable when its queue is full."""
        started, stats = time.perf_counter_ns(), self.stats[model.name]
        batcher = self.batchers.get(model.name)
        if batcher is None:  # unloaded while this request's body was being read
            raise NotFound(f"model '{model.name[:80]}' was unloaded; served: {', '.join(self.models)}")
        try:
            probs = await batcher.infer(images)
        except QueueFull as exc:
            stats.failed(time.perf_counter_ns() - started)
            raise Unavailable(f"server busy: {exc}; retry shortly") from None
        stats.succeeded(len(images), time.perf_counter_ns() - started)
        return probs

    def check_top_k(self, top_k: int) -> int:
        """``top_k`` if the default model has that many classes; else InvalidInput, before any upload is read."""
        if not 1 <= top_k <= self.default.predictor.num_classes:
            raise InvalidInput(f"top_k must be in 1..{self.default.predictor.num_classes}")
        return top_k

    async def classify_uploads(
        self,
        uploads: list[tuple[str, bytes]],
        top_k: int,
        disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[dict]:
        """Encoded image files -> one ``{"path", ...prediction}`` or ``{"path", "error"}`` each, in order.

        Decoding runs in the service's bounded pool (decoding.py), within the request's pixel budget
        and deadline, and stops when ``disconnected()`` says the client has gone.
        """
        m = self.default
        self.check_top_k(top_k)
        decoded = await self.decoder.decode(uploads, disconnected)
        good = [arr for arr in decoded if isinstance(arr, np.ndarray)]
        if not good:
            reasons = "; ".join(d for d in decoded if isinstance(d, str))
            kind = UnsupportedMedia if "not a readable image" in reasons else InvalidInput
            raise kind(f"no readable image: {reasons}")
        probs = iter(await self.infer(m, np.stack(good)))
        return [
            {"path": name} | m.predictor.describe(next(probs), top_k)
            if isinstance(arr, np.ndarray)
            else {"path": name, "error": arr}
            for (name, _), arr in zip(uploads, decoded)
        ]

    def server_metadata(self) -> dict:
        return {"name": "cifar-pack", "version": __version__, "extensions": EXTENSIONS}

    def model_metadata(self, m: ServedModel) -> dict:
        return model_metadata(m.name, m.version, m.predictor)

    def model_config(self, m: ServedModel) -> dict:
        """The model's configuration as Triton reports it (``GET /v2/models/NAME/config``, ModelConfig)."""
        p = m.predictor
        return triton_config(m.name, p.input_name, p.num_classes, self.batching, p.settings.engine.value)

    def model_statistics(self, m: ServedModel) -> dict:
        """Triton's statistics extension for one model: requests, images, onnxruntime calls, times."""
        return {"model_stats": [{"name": m.name, "version": m.version} | self.stats[m.name].to_json()]}

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        self.decoder.close()
