"""Running the server: the listening socket, uvicorn, SIGTERM's graceful drain, the API-key rule."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from ..runtime.errors import UsageError
from .config import (
    API_KEY_VARIABLE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    GRACEFUL_SHUTDOWN_S,
    KEEP_ALIVE_S,
    MAX_CONNECTIONS,
)
from .core import InferenceService

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def api_key_from_env() -> str | None:
    return os.environ.get(API_KEY_VARIABLE) or None


def run_server(
    service: InferenceService,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allow_unauthenticated: bool = False,
    grpc_port: int | None = None,
    allowed_hosts: list[str] | None = None,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Serve ``service`` over HTTP (and gRPC on ``grpc_port``) until SIGTERM or Ctrl-C; then finish
    in-flight requests and return. Both transports run in one event loop, over one service.

    Raises:
        UsageError: a non-loopback ``host`` without an API key (unless ``allow_unauthenticated``),
            or a port that cannot be bound.
    """
    import uvicorn

    from .guard import served_hosts
    from .http import create_app

    if not is_loopback(host) and not service.api_key and not allow_unauthenticated:
        raise UsageError(
            f"--host {host} is reachable from other machines: set {API_KEY_VARIABLE}, "
            "or pass --allow-unauthenticated to serve without a key"
        )
    # gRPC's drain runs inside the app's shutdown, before the batchers close (grpc.py's calls use them).
    before_close: list[Callable[[], Awaitable[None]]] = []
    app = create_app(service, served_hosts(host, allowed_hosts or [], is_loopback(host)), before_close)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on, before uvicorn's loop accepts them
    except OSError as exc:
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None
    # No access log (metrics count requests), no proxy-header rewriting (put a TLS proxy in front
    # and it forwards to loopback; docs/serving.md), no Server/Date headers: less work per request.
    from .connections import BoundedHttpTools

    raise_descriptor_limit()
    config = uvicorn.Config(
        app,
        # head size and time limits, connection cap: connections.py
        http=type("HttpProtocol", (BoundedHttpTools,), {"max_connections": max_connections}),
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    server = _server(config)
    bound = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
    if grpc_port:
        _check_free(host, grpc_port)  # before anything is printed: a busy port is one line, not three
    log.info("serving %s at %s (Ctrl-C or SIGTERM to stop)", ", ".join(service.models), url)
    for name, m in service.models.items():
        log.info("  %s: %s on %s, %d classes", name, m.path, m.predictor.runs_on(), m.predictor.num_classes)
    if grpc_port is None:
        server.run(sockets=[sock])
    else:
        _serve_both(server, config, sock, service, host, grpc_port, max_connections, before_close)
    log.info("stopped")


def _serve_both(
    server: uvicorn.Server,
    config: uvicorn.Config,
    sock: socket.socket,
    service: InferenceService,
    host: str,
    port: int,
    max_connections: int,
    before_close: list[Callable[[], Awaitable[None]]],
) -> None:
    """uvicorn and the gRPC server in one loop (uvloop where uvicorn would use it): one batcher for both.

    On SIGTERM uvicorn stops accepting, drains HTTP, then shuts the app down, which first stops the
    gRPC server (``before_close``: new calls refused, those in flight answered within the grace
    period) and only then closes the batchers both transports share.
    """
    from .grpc import start_grpc

    async def both() -> None:
        try:
            grpc_server, bound = await start_grpc(service, host, port, max_connections)
        except (OSError, RuntimeError) as exc:
            raise UsageError(f"--host {host} --grpc-port {port}: cannot listen there ({exc})") from None
        log.info("gRPC (KServe v2, Triton's GRPCInferenceService) at %s:%d", host, bound)
        before_close.append(lambda: grpc_server.stop(grace=GRACEFUL_SHUTDOWN_S))
        try:
            await server.serve(sockets=[sock])
        finally:
            await grpc_server.stop(grace=GRACEFUL_SHUTDOWN_S)  # at once when the app already stopped it

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(both())


def _check_free(host: str, port: int) -> None:
    """UsageError naming --grpc-port when ``host:port`` cannot be bound (in use, or not an address here)."""
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: TIME_WAIT is no conflict
        probe.bind((host, port))
    except OSError as exc:
        raise UsageError(f"--host {host} --grpc-port {port}: cannot listen there ({exc.strerror})") from None
    finally:
        probe.close()


def raise_descriptor_limit() -> None:
    """Raise the soft limit on open files to the hard one (often 1,024 -> 1,048,576): each
    connection is a descriptor, and the connection cap (connections.py) should be what binds."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))
    except (ImportError, ValueError, OSError):  # Windows, or a limit this process may not change
        pass


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's Server without its signal re-raise.

    Workaround for uvicorn >= 0.29, which re-raises SIGTERM/SIGINT after its graceful shutdown
    (so the process exits 143/130 instead of 0): the same handlers (stop accepting, finish
    in-flight requests), without the re-raise.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)
