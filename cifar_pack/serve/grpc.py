"""The gRPC transport: KServe v2 as Triton defines it (``inference.GRPCInferenceService``, the proto
``tritonclient.grpc`` ships), a thin layer over the same ``InferenceService`` as HTTP.

So a gRPC request and an HTTP request land in the same dynamic batcher (one onnxruntime call may
serve both), under the same limits, API key and metrics (``protocol="grpc"``). Implemented: health
(ServerLive, ServerReady, ModelReady), metadata (ServerMetadata, ModelMetadata), ModelInfer with
``raw_input_contents``/``raw_output_contents`` (and typed ``contents``), the classification
extension (the output's ``classification`` parameter), ModelConfig and ModelStatistics, and model
control (RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload). The other calls (shared
memory, tracing, logging settings, streaming) answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from ..runtime.config import INPUT_BYTES, INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME
from . import errors
from .config import HEAD_TIMEOUT_S, KEEP_ALIVE_S, MAX_CONNECTIONS
from .core import InferenceService
from .tensors import InferRequest, OutputSpec, bytes_tensor, check_shape, classification_strings

# Concurrent calls per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; unlimited before: 10,600
# open streams on one connection held 226 MB). grpcio's clients do not queue calls at the limit: the
# server refuses the excess with REFUSED_STREAM (UNAVAILABLE, safe to retry). At 100, 2,588 of
# 3,000 concurrent calls on one channel were refused; 1,000 serves any client that keeps no more in
# flight. Unlimited, 22 % of 3,000 came back CANCELLED, cancelled by gRPC's core before the server's
# handler saw them (benchmarks/README.md, "gRPC under attack").
MAX_STREAMS = 1000
OFF_LOOP_BYTES = 256 * 1024  # ModelInfer messages above this are converted in a thread (~50 uint_contents images)
PUBLIC = ("ServerLive", "ServerReady")  # health answers without the key, as /v2/health/* does on HTTP
# The method label of the request metrics: one of the service's methods, or "unknown". A client
# chooses the path it calls; a label taken from it unchecked made one series per made-up name.
METHODS = frozenset(service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods_by_name)
# The service's errors -> the gRPC status Triton's clients expect (errors.status_of: nearest base).
GRPC_STATUS: dict[type[errors.ServeError], grpc.StatusCode] = {
    errors.ServeError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.RequestTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ClientGone: grpc.StatusCode.CANCELLED,
}
UNEXPECTED = grpc.StatusCode.UNKNOWN  # what grpcio answers an exception no table lists: counted as such


async def start_grpc(
    service: InferenceService, host: str, port: int, max_connections: int = MAX_CONNECTIONS
) -> tuple[grpc.aio.Server, int]:
    """Start serving ``service`` over gRPC on ``host:port`` (0: any free port); (server, bound port).

    Bounded as the HTTP port is (grpcio's own server arguments, no wrapper): at most
    ``max_connections`` connections (more are closed at accept), a connection must finish its
    handshake within HEAD_TIMEOUT_S, one with no call for KEEP_ALIVE_S x 12 is closed (GOAWAY),
    and each connection may run MAX_STREAMS calls at once (advertised in HTTP/2 SETTINGS).
    """
    options = [
        ("grpc.max_allowed_incoming_connections", max_connections),
        ("grpc.server_handshake_timeout_ms", int(HEAD_TIMEOUT_S * 1000)),
        ("grpc.max_connection_idle_ms", int(KEEP_ALIVE_S * 12 * 1000)),
        ("grpc.max_concurrent_streams", MAX_STREAMS),
        ("grpc.max_receive_message_length", service.limits.max_grpc_bytes),
        ("grpc.max_send_message_length", service.limits.max_request_bytes),
        # gRPC turns SO_REUSEPORT on by default on Linux: a second process could then bind the same
        # port and take new connections (seen: 20 of 20). One server per port, as on HTTP.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(interceptors=[Guard(service)], options=options)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(GrpcApi(service), server)
    bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return server, bound


class Guard(grpc.aio.ServerInterceptor):
    """The API key (``authorization: Bearer KEY`` in the call's metadata), the request metrics, and
    the one place a ``ServeError`` becomes its status (``GRPC_STATUS``), as kserve's interceptors do."""

    def __init__(self, service: InferenceService):
        self.service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method.rsplit("/", 1)[-1]
        method = method if method in METHODS else "unknown"
        keys = [v for k, v in details.invocation_metadata or () if k == "authorization"]
        keys = [k.encode() if isinstance(k, str) else k for k in keys]
        refused = self.service.api_key and not (len(keys) == 1 and self.service.authorized(keys[0]))
        if method not in PUBLIC and refused:
            return self._answered(method, _refusal(errors.Unauthenticated()), None)
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return self._answered(method, handler.unary_unary, handler)

    def _answered(
        self, method: str, inner: Callable[..., Awaitable[Any]], handler: grpc.RpcMethodHandler | None
    ) -> grpc.RpcMethodHandler:
        """``inner`` counted in the metrics, its ServeError aborting the call with the mapped status."""

        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = await inner(request, context)
            except errors.ServeError as exc:
                code = errors.status_of(exc, GRPC_STATUS)
                self.service.metrics.count_request(method, code.name, time.perf_counter() - started, "grpc")
                await context.abort(code, str(exc))
            except BaseException:
                code = context.code() or UNEXPECTED
                self.service.metrics.count_request(method, code.name, time.perf_counter() - started, "grpc")
                raise
            self.service.metrics.count_request(method, "OK", time.perf_counter() - started, "grpc")
            return response

        if handler is None:
            return grpc.unary_unary_rpc_method_handler(counted)
        return grpc.unary_unary_rpc_method_handler(
            counted, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def _refusal(refused: errors.ServeError) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        raise refused

    return refuse


class GrpcApi(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Each call a few lines over the service; a ServeError it raises is mapped by ``Guard``."""

    def __init__(self, service: InferenceService):
        self.service = service

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802 (the proto's names)
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return service_pb2.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        self.service.model(request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return service_pb2.ServerMetadataResponse(**self.service.server_metadata())

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        meta = self.service.model_metadata(self.service.model(request.name, request.version))
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        m = self.service.model(request.model_name, request.model_version)
        parse = functools.partial(parse_grpc_infer, request, m.predictor.num_classes, self.service.limits.max_images)
        # A large message's tensor conversion (4 x 31 M uint_contents stalled HTTP health for 53 s)
        # runs in a thread; a small one costs less than the hand-over.
        parsed = await asyncio.to_thread(parse) if request.ByteSize() > OFF_LOOP_BYTES else parse()
        probs = await self.service.infer(m, parsed.images)
        return encode_grpc_infer(m.name, m.version, parsed, probs, m.predictor.class_names)

    async def ModelConfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        config = self.service.model_config(self.service.model(request.name, request.version))
        return service_pb2.ModelConfigResponse(config=json_format.ParseDict(config, model_config_pb2.ModelConfig()))

    async def ModelStatistics(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        stats = self.service.model_statistics(self.service.model(request.name, request.version))
        return json_format.ParseDict(stats, service_pb2.ModelStatisticsResponse())

    async def RepositoryIndex(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        entry = service_pb2.RepositoryIndexResponse.ModelIndex
        index = self.service.repository_index()
        models = [entry(**m) for m in index if not request.ready or m["state"] == "READY"]
        return service_pb2.RepositoryIndexResponse(models=models)

    async def RepositoryModelLoad(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        await self.service.load(request.model_name, list(request.parameters))
        return service_pb2.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        await self.service.unload(request.model_name)
        return service_pb2.RepositoryModelUnloadResponse()


def parse_grpc_infer(request: Any, num_classes: int, max_images: int) -> InferRequest:
    """A ModelInferRequest -> images and what the client wants back (errors as on HTTP).

    Sizes are checked against the declared shape before any conversion: a message of millions of
    ``uint_contents`` values claiming one image is refused by its length alone.
    """
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        raise errors.InvalidInput(f"expected one input tensor named '{INPUT_NAME}'")
    tensor = request.inputs[0]
    if tensor.datatype != "UINT8":
        raise errors.InvalidInput(f"input '{INPUT_NAME}' must be UINT8, got {tensor.datatype[:20]!r}")
    count = check_shape(list(tensor.shape), max_images)
    expected = count * INPUT_BYTES
    if request.raw_input_contents:
        raw = request.raw_input_contents[0]
        if len(raw) != expected:
            raise errors.InvalidInput(
                f"{len(raw)} bytes of raw input contents; [{count}, 32, 32, 3] UINT8 needs {expected}"
            )
        images = np.frombuffer(raw, dtype=np.uint8).reshape(count, *INPUT_SHAPE)
    else:
        contents = tensor.contents.uint_contents
        if len(contents) != expected:
            raise errors.InvalidInput(
                f"input '{INPUT_NAME}' has {len(contents)} uint_contents values; [{count}, 32, 32, 3] needs {expected}"
            )
        values = np.asarray(contents, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise errors.InvalidInput(f"input '{INPUT_NAME}' needs {expected} values in 0..255 (raw or uint_contents)")
        images = values.astype(np.uint8).reshape(count, *INPUT_SHAPE)
    return InferRequest(request.id or None, images, _output_spec(request, num_classes))


def _output_spec(request: Any, num_classes: int) -> OutputSpec:
    if not request.outputs:
        return OutputSpec(True, 0)
    if len(request.outputs) != 1 or request.outputs[0].name != OUTPUT_NAME:
        raise errors.InvalidInput(f"'outputs' must list the one output, '{OUTPUT_NAME}'")
    params = request.outputs[0].parameters
    k = params["classification"].int64_param if "classification" in params else 0
    if not 0 <= k <= num_classes:
        raise errors.InvalidInput(f"classification must be an integer in 0..{num_classes}, got {k}")
    return OutputSpec(True, int(k))


def encode_grpc_infer(model: str, version: str, request: InferRequest, probs: np.ndarray, labels: list[str]) -> Any:
    """(N, C) float32 probabilities -> a ModelInferResponse with raw output contents."""
    k = request.output.classification
    if k:
        strings = classification_strings(probs, k, labels)
        raw = bytes_tensor(strings)
        output = service_pb2.ModelInferResponse.InferOutputTensor(
            name=OUTPUT_NAME, datatype="BYTES", shape=[len(probs), k]
        )
    else:
        raw = np.ascontiguousarray(probs, dtype="<f4").tobytes()
        output = service_pb2.ModelInferResponse.InferOutputTensor(
            name=OUTPUT_NAME, datatype="FP32", shape=list(probs.shape)
        )
    return service_pb2.ModelInferResponse(
        model_name=model, model_version=version, id=request.id or "", outputs=[output], raw_output_contents=[raw]
    )
