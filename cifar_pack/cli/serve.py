"""``cifar-pack serve``: the Open Inference Protocol over HTTP, with dynamic batching and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..runtime.config import DEFAULT_DEVICE, DEFAULT_ENGINE, DEFAULT_PRECISION
from ..runtime.engines import EngineSettings, per_instance, sharing_cores
from ..runtime.errors import UsageError
from ..serve.config import (
    DEFAULT_BATCHING,
    DEFAULT_HOST,
    DEFAULT_LIMITS,
    DEFAULT_MAX_MODELS,
    DEFAULT_PORT,
    MAX_CONNECTIONS,
    MAX_INSTANCES,
    Batching,
    Limits,
    ModelControl,
)
from .app import app
from .common import EngineOpt, ModelOpt, PrecisionOpt, SpinOpt, ThreadsOpt, command


@app.command()
@command
def serve(
    model: ModelOpt = None,
    model_repository: Annotated[
        Path | None,
        typer.Option(
            "--model-repository",
            help="Serve every model of a Triton-style repository (DIR/<name>/<version>/model.onnx).",
        ),
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(
            "--model-name",
            help="Serve --model under this name (default: its file stem: cifar10 for the bundled model, "
            "model for artifacts/model.onnx).",
        ),
    ] = None,
    model_control_mode: Annotated[
        ModelControl,
        typer.Option(
            "--model-control-mode",
            help="explicit: clients may load, reload and unload repository models (Triton's model control).",
        ),
    ] = ModelControl.none,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (other than loopback needs an API key).")
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = DEFAULT_PORT,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            min=0,
            max=65535,
            help="Also serve KServe v2 over gRPC here (Triton's port: 8001; 0: any free one). Off unless given.",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, ... as for predict.")] = DEFAULT_DEVICE,
    threads: ThreadsOpt = None,
    spin: SpinOpt = None,
    engine: EngineOpt = DEFAULT_ENGINE,
    precision: PrecisionOpt = DEFAULT_PRECISION,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Most images per engine call.")
    ] = DEFAULT_BATCHING.max_batch_size,
    max_queue_delay_ms: Annotated[
        float, typer.Option("--max-queue-delay-ms", min=0.0, help="How long a request waits for others to batch with.")
    ] = DEFAULT_BATCHING.max_queue_delay_ms,
    max_queue_images: Annotated[
        int, typer.Option("--max-queue-images", min=1, help="Images waiting before new requests get 503.")
    ] = DEFAULT_BATCHING.max_queue_images,
    instances: Annotated[
        int,
        typer.Option(
            "--instances",
            min=1,
            max=MAX_INSTANCES,
            help="Engine calls at once, each on its own threads (Triton's instance count).",
        ),
    ] = DEFAULT_BATCHING.instances,
    max_images: Annotated[
        int, typer.Option("--max-images", min=1, help="Most images in one request.")
    ] = DEFAULT_LIMITS.max_images,
    max_request_mb: Annotated[
        float, typer.Option("--max-request-mb", min=0.001, help="Largest request body, MB.")
    ] = DEFAULT_LIMITS.max_request_bytes / 2**20,
    body_timeout_s: Annotated[
        float, typer.Option("--body-timeout-s", min=0.1, help="Seconds a client may take to send a body (then 408).")
    ] = DEFAULT_LIMITS.body_timeout_s,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A Host name clients use besides localhost/127.0.0.1 (repeatable; '*': any). docs/serving.md.",
        ),
    ] = None,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, help="Open connections at most (more are closed at once).")
    ] = MAX_CONNECTIONS,
    max_models: Annotated[
        int, typer.Option("--max-models", min=1, help="Most model folders a --model-repository may hold.")
    ] = DEFAULT_MAX_MODELS,
    allow_unauthenticated: Annotated[
        bool, typer.Option("--allow-unauthenticated", help="Allow a non-loopback --host without CIFAR_PACK_API_KEY.")
    ] = False,
) -> None:
    """Serve the model over HTTP: the Open Inference Protocol (KServe v2 / Triton), /predict, /metrics."""
    from ..serve.core import InferenceService
    from ..serve.repository import Repository, load_models
    from ..serve.server import api_key_from_env, run_server

    if model_control_mode == ModelControl.explicit and model_repository is None:
        raise UsageError("--model-control-mode explicit needs --model-repository DIR (what to load from)")
    settings = per_instance(sharing_cores(EngineSettings.of(engine, precision, device, threads, spin)), instances)
    served, failures = load_models(model, model_repository, settings, max_models, model_name)
    repository = None
    if model_repository is not None:
        repository = Repository(model_repository, model_control_mode, settings, max_models, failures)
    service = InferenceService(
        served,
        batching=Batching(max_batch_size, max_queue_delay_ms, max_queue_images, instances),
        limits=Limits(int(max_request_mb * 2**20), max_images, body_timeout_s),
        api_key=api_key_from_env(),
        repository=repository,
    )
    run_server(
        service,
        host=host,
        port=port,
        allow_unauthenticated=allow_unauthenticated,
        grpc_port=grpc_port,
        allowed_hosts=allowed_host,
        max_connections=max_connections,
    )
