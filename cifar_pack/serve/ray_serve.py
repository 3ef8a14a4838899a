"""The model as a Ray Serve deployment that speaks the same KServe v2 infer protocol as ``cifar-pack serve``.

>>> from ray import serve
>>> from cifar_pack.serve.ray_serve import KServeClassifier
>>> serve.run(KServeClassifier.options(num_replicas=2).bind(model=ray.put(model_bytes)), route_prefix="/")

Each replica holds one ``Predictor``; ``@serve.batch`` gathers concurrent requests' images into one
engine call (Ray Serve's dynamic batching, where ``cifar-pack serve`` has its own batcher). The
routes are the server's that an infer client needs: ``POST /v2/models/<name>/infer`` (JSON or
the binary tensor extension, the classification extension: ``serve/protocol.py``), the model's
metadata at ``GET /v2/models/<name>``, and ``GET /v2/health/live`` and ``/ready``. Errors are the
server's: ``{"error": message}`` with the status from ``serve/http_status.py``. Model control,
statistics, authentication and the server's limits on connections are Ray Serve's business here
(its proxy and its own options), not this class's. The ``[ray]`` extra with Ray Serve
(``pip install "ray[serve]"``).
"""

from __future__ import annotations

import os

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..runtime.engines import EngineSettings, ray_worker_cpus, sharing_cores
from ..runtime.onnx_file import openable_model
from ..runtime.predictor import Predictor
from . import errors
from .config import DEFAULT_LIMITS
from .http_status import error_response
from .models import model_metadata
from .protocol import encode_infer, parse_infer

DEFAULT_NAME = "cifar10"
BATCH_WAIT_S = 0.005  # how long a replica waits for more requests to join a batch (Ray Serve's default: 0.01)


@serve.deployment(ray_actor_options={"num_cpus": 1})
class KServeClassifier:
    """A replica: ``model`` is a path every node can read, the model's bytes, or a Ray
    ``ObjectRef`` to them (the bytes reach each replica's node through the object store).
    ``name``: the model's name in the URL; ``threads``: onnxruntime's (default: the replica's CPUs)."""

    def __init__(self, model: str | os.PathLike | bytes | object | None = None, name: str = DEFAULT_NAME,
                 threads: int | None = None):  # fmt: skip
        settings = EngineSettings(device="cpu", threads=threads or ray_worker_cpus())
        self.predictor = Predictor(openable_model(model), settings=sharing_cores(settings))
        self.name = name

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except errors.ServeError as exc:
            return error_response(exc)

    async def _route(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if path in ("/v2/health/live", "/v2/health/ready"):
            return JSONResponse({"live" if path.endswith("live") else "ready": True})
        base = f"/v2/models/{self.name}"
        if path == base and request.method == "GET":
            return JSONResponse(self.metadata())
        if path != f"{base}/infer":
            raise errors.NotFound(f"no route {request.method} {path[:200]}: this deployment serves {base}/infer")
        if request.method != "POST":
            raise errors.MethodNotAllowed(f"{path} takes POST")
        body = await request.body()
        if len(body) > DEFAULT_LIMITS.max_request_bytes:
            raise errors.TooLarge(
                f"the request body is {len(body)} bytes; the limit is {DEFAULT_LIMITS.max_request_bytes}"
            )
        infer = parse_infer(body, request.headers.get("inference-header-content-length"),
                            len(self.predictor.class_names), DEFAULT_LIMITS.max_images)  # fmt: skip
        probs = await self.batched(infer.images)
        content, headers = encode_infer(self.name, "1", infer, probs, self.predictor.class_names)
        return Response(content, headers=headers)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=BATCH_WAIT_S)
    async def batched(self, requests: list[np.ndarray]) -> list[np.ndarray]:
        """Each request's (n, 32, 32, 3) images -> its (n, C) probabilities, in one engine call."""
        probs = self.predictor.predict_proba(np.concatenate(requests))
        bounds = np.cumsum([len(images) for images in requests])[:-1]
        return np.split(probs, bounds)

    def metadata(self) -> dict:
        """The model's KServe v2 metadata, as ``cifar-pack serve`` gives it."""
        return model_metadata(self.name, "1", self.predictor)

    def node(self) -> str:
        """The Ray node this replica runs on (where a deployment's replicas landed)."""
        import ray

        return ray.get_runtime_context().get_node_id()
