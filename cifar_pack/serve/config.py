"""The serving side's defaults, one home: the command line, the service core, the HTTP transport
and the Triton repository writer all read them from here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..runtime.config import INPUT_BYTES

DEFAULT_HOST = "127.0.0.1"  # loopback: anything else needs an API key (or --allow-unauthenticated)
# Host header names a loopback server answers to (more with --allowed-host; docs/serving.md).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
DEFAULT_PORT = 8000  # Triton's and KServe's HTTP port
API_KEY_VARIABLE = "CIFAR_PACK_API_KEY"
ORT_WEB_VARIABLE = "CIFAR_PACK_ORT_WEB"  # where onnxruntime-web's dist/ is, for the page's browser mode
GRACEFUL_SHUTDOWN_S = 30  # in-flight requests get this long after SIGTERM
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this (uvicorn's default, stated)
# Request heads and connections, bounded before the app sees a request (connections.py).
MAX_HEAD_BYTES = 64 * 1024  # request line + headers; browsers send 1-2 KB, nginx allows 8 KB a line
MAX_HEADERS = 100
HEAD_TIMEOUT_S = 10.0  # to complete a request head, from the connection's start or the request's first byte
MAX_CONNECTIONS = 1000  # open at once; below the usual 1,024-descriptor limit, which start-up raises
# Most model folders a repository may have: each served model holds its weights and an engine with
# its own thread pool (measured: 100 models, 948 MB and 103 threads; 1,000 passed 8 GB).
DEFAULT_MAX_MODELS = 64


class ModelControl(StrEnum):
    """Triton's ``--model-control-mode``: ``none`` serves what the repository holds at start;
    ``explicit`` also lets clients load, reload and unload models through the API."""

    none = "none"
    explicit = "explicit"


@dataclass(frozen=True)
class Batching:
    """Dynamic batching, as Triton's ``dynamic_batching`` block says it.

    ``max_batch_size``: most images per onnxruntime call; ``max_queue_delay_ms``: how long the
    first request of a batch waits for company; ``max_queue_images``: images waiting before new
    requests are refused (``Unavailable``); ``instances``: model calls that may run at once (Triton's
    ``instance_group`` count), each on its own engine threads.
    """

    max_batch_size: int = 64
    max_queue_delay_ms: float = 2.0
    max_queue_images: int = 4096
    instances: int = 1


# Most model calls at once: each is a thread pool of its own; more than this many cannot help on
# any machine this runs on (10^12 was accepted, and the server then tried to make them).
MAX_INSTANCES = 64
# A model control request's body (Triton's load parameters): a few hundred bytes when sent at all.
MAX_CONTROL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-request bounds: body bytes (JSON bodies, which cost ~50 ms of parsing a MB, have their
    own), images per request, seconds to receive a body, pixels one request may decode (from the
    images' headers, before any is decoded) and seconds it may spend decoding (the images left get
    an error each). Each refusal is a typed error (errors.py) the transports map to a status."""

    max_request_bytes: int = 32 * 2**20
    max_images: int = 1024
    body_timeout_s: float = 30.0
    max_json_bytes: int = 8 * 2**20
    max_request_pixels: int = 200_000_000
    decode_timeout_s: float = 30.0

    @property
    def max_grpc_bytes(self) -> int:
        """The largest gRPC message worth receiving: ``max_images`` images as ``uint_contents``
        (packed varints, at most 2 bytes a value), plus 1 MB for names and parameters, and never
        more than ``max_request_bytes``. 6.3 MB at the defaults: grpcio holds each message whole
        before any handler runs, so 32 concurrent 31 MB messages held 2.7 GB."""
        return min(self.max_request_bytes, self.max_images * INPUT_BYTES * 2 + 2**20)


DEFAULT_BATCHING = Batching()
DEFAULT_LIMITS = Limits()
