"""``cifar-pack serve``: the runtime side over HTTP. onnxruntime, numpy, Pillow and the ASGI stack
(Starlette on uvicorn, the ``[serve]`` extra); never TensorFlow (pyproject.toml's import contract).

    batcher.py   dynamic batching: a bounded queue, one onnxruntime call per batch, off the event loop
    protocol.py  the Open Inference Protocol (KServe v2) as Triton speaks it: JSON and binary tensors
    models.py    one .onnx, or a Triton-style model repository
    app.py       the routes: /v2/..., /predict, /metrics, /model.onnx, /model.json
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket

from ..errors import UsageError

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_server(
    models: dict,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    allow_unauthenticated: bool = False,
    **app_options,
) -> None:
    """Serve ``models`` until SIGTERM or Ctrl-C; then finish in-flight requests and return.

    Raises:
        UsageError: a non-loopback ``host`` without an API key (unless ``allow_unauthenticated``),
            or a port that cannot be bound.
    """
    import uvicorn

    from .app import create_app

    if not is_loopback(host) and not api_key and not allow_unauthenticated:
        raise UsageError(
            f"--host {host} is reachable from other machines: set CIFAR_PACK_API_KEY, "
            "or pass --allow-unauthenticated to serve without a key"
        )
    app = create_app(models, api_key=api_key, **app_options)
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
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=30,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    server = _server(config)
    bound = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
    log.info("serving %s at %s (Ctrl-C or SIGTERM to stop)", ", ".join(models), url)
    for name, m in models.items():
        log.info("  %s: %s on %s, %d classes", name, m.path, m.predictor.device, m.predictor.num_classes)
    server.run(sockets=[sock])
    log.info("stopped")


def _server(config):
    """uvicorn's Server without its signal re-raise.

    Workaround for uvicorn >= 0.29, which re-raises SIGTERM/SIGINT after its graceful shutdown
    (so the process exits 143/130 instead of 0): the same handlers (stop accepting, finish
    in-flight requests), without the re-raise.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            signals = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)
