"""``cifar-pack predict``: images -> labels with onnxruntime alone (TensorFlow is never loaded)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..runtime.config import DEFAULT_BATCH_SIZE, DEFAULT_DEVICE, DEFAULT_MAX_PIXELS
from ..runtime.providers import DEVICE_PROVIDERS
from .app import app
from .common import JsonOpt, ModelOpt, ThreadsOpt, command, emit, printable

if TYPE_CHECKING:
    from rich.progress import Progress

DEVICE_HELP = f"{DEFAULT_DEVICE}, {', '.join(DEVICE_PROVIDERS)} (strict unless {DEFAULT_DEVICE})."


@app.command()
@command
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, directories (recursive) or glob patterns.")],
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Also list the K most likely classes.")] = 1,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per onnxruntime call.")
    ] = DEFAULT_BATCH_SIZE,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = DEFAULT_DEVICE,
    threads: ThreadsOpt = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-pixels",
            min=1,
            help="Refuse images larger than this many pixels (or set CIFAR_PACK_MAX_PIXELS).",
            show_default=f"{DEFAULT_MAX_PIXELS:_}".replace("_", ","),
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify images with onnxruntime (TensorFlow is never loaded). Exit 1 if any input failed."""
    from ..runtime.images import find_images
    from ..runtime.predictor import Predictor

    predictor = Predictor(model, device=device, threads=threads, max_pixels=max_pixels)
    typer.echo(f"model: {printable(predictor.path)} on {predictor.device}", err=True)
    items = find_images(inputs)  # paths, and error entries for inputs that matched nothing, in order
    paths = [item for item in items if isinstance(item, Path)]
    results, failed = [], 0
    with _progress(len(paths), enabled=len(paths) >= 500) as advance:
        predictions = predictor.predict_files(paths, top_k=top_k, batch_size=batch_size, on_batch=advance)
        for item in items:
            result = next(predictions) if isinstance(item, Path) else item
            if "error" in result:
                failed += 1
                typer.echo(f"error: {printable(result['error'])}", err=True)
            elif not as_json:
                typer.echo(_prediction_line(result, top_k))
            results.append(result)
    if as_json:
        emit(results, True)
    if failed:
        typer.echo(f"{failed} of {len(items)} inputs failed", err=True)
        raise typer.Exit(1)


def _prediction_line(result: dict, top_k: int) -> str:
    line = f"{printable(result['path'])}\t{printable(result['label'])}\t{result['probability']:.4f}"
    if top_k > 1:
        line += "\t" + ", ".join(f"{printable(t['label'])} {t['probability']:.4f}" for t in result["top_k"])
    return line


class _progress:
    """A rich progress bar on stderr for long runs; a no-op for short ones."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled and sys.stderr.isatty()
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        bar = self.bar = Progress(console=Console(stderr=True), transient=True)
        bar.start()
        task = bar.add_task("predicting", total=self.total)
        return lambda n: bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()
