"""``cifar-pack predict``: images -> labels with onnxruntime alone (TensorFlow is never loaded)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..runtime.config import DEFAULT_BATCH_SIZE, DEFAULT_DEVICE, DEFAULT_ENGINE, DEFAULT_MAX_PIXELS, DEFAULT_PRECISION
from ..runtime.errors import UsageError
from ..runtime.providers import DEVICE_PROVIDERS
from ..runtime.results import JsonArray, check_output, result_file
from .app import app
from .common import EngineOpt, JsonOpt, ModelOpt, PrecisionOpt, SpinOpt, ThreadsOpt, command, printable

if TYPE_CHECKING:
    from rich.progress import Progress

    from ..runtime.predictor import Predictor

DEVICE_HELP = f"{DEFAULT_DEVICE}, {', '.join(DEVICE_PROVIDERS)} (strict unless {DEFAULT_DEVICE})."


@app.command()
@command
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, directories (recursive) or glob patterns.")],
    model: ModelOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Also list the K most likely classes.")] = 1,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per engine call.")
    ] = DEFAULT_BATCH_SIZE,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = DEFAULT_DEVICE,
    threads: ThreadsOpt = None,
    spin: SpinOpt = None,
    engine: EngineOpt = DEFAULT_ENGINE,
    precision: PrecisionOpt = DEFAULT_PRECISION,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-pixels",
            min=1,
            help="Refuse images larger than this many pixels (or set CIFAR_PACK_MAX_PIXELS).",
            show_default=f"{DEFAULT_MAX_PIXELS:_}".replace("_", ","),
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the results to this file instead of stdout: .jsonl or .csv, complete or absent.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Classify images with onnxruntime or OpenVINO (TensorFlow is never loaded). Exit 1 if any input failed.

    Results stream: each is printed (or written to --output) as soon as its batch is done, so
    memory does not grow with the number of images.
    """
    from ..runtime.engines import EngineSettings, sharing_cores
    from ..runtime.inputs import iter_images
    from ..runtime.predictor import Predictor

    if output is not None:
        if as_json:
            raise UsageError("--output and --json: give one (--output writes JSON Lines with a .jsonl name)")
        check_output(output, overwrite)  # before the model loads: a mistake answers at once
    settings = sharing_cores(EngineSettings.of(engine, precision, device, threads, spin))  # beside the decoding thread
    predictor = Predictor(model, max_pixels=max_pixels, settings=settings)
    typer.echo(f"model: {printable(predictor.path)} on {predictor.runs_on()}", err=True)
    with _sink(output, top_k, as_json) as write, _progress(enabled=True) as advance:
        results = in_input_order(predictor, iter_images(inputs), top_k, batch_size, advance)
        total, failed = _report(results, write)
    if output is not None:
        typer.echo(f"wrote {total} results to {printable(output)}", err=True)
    if failed:
        typer.echo(f"{failed} of {total} inputs failed", err=True)
        raise typer.Exit(1)


def in_input_order(
    predictor: Predictor, items: Iterator[Path | dict], top_k: int, batch_size: int, on_batch: Callable[[int], None]
) -> Iterator[dict]:
    """One result per input item, in order: predictions for paths, misses (``{"path", "error"}``) as they are.

    ``items`` is read lazily by ``predict_files`` (a batch ahead); the misses it passes over wait
    in ``order`` until the paths before them have their results.
    """
    order: deque[Path | dict] = deque()

    def paths() -> Iterator[Path]:
        for item in items:
            order.append(item)
            if isinstance(item, Path):
                yield item

    for result in predictor.predict_files(paths(), top_k=top_k, batch_size=batch_size, on_batch=on_batch):
        while not isinstance(item := order.popleft(), Path):  # misses before the path this result is for
            yield item
        yield dict(result)
    yield from (item for item in order if isinstance(item, dict))  # misses after the last path


def _report(results: Iterator[dict], write: Callable[[dict], None]) -> tuple[int, int]:
    """Each result to its sink, each failure as an ``error:`` line on stderr; (results, failures)."""
    total = failed = 0
    for result in results:
        total += 1
        if "error" in result:
            failed += 1
            typer.echo(f"error: {printable(result['error'])}", err=True)
        write(result)
    return total, failed


@contextlib.contextmanager
def _sink(output: Path | None, top_k: int, as_json: bool) -> Iterator[Callable[[dict], None]]:
    """Where results go: a file (complete or absent), a JSON array on stdout, or one line each."""
    if output is not None:
        with result_file(output, top_k) as write:
            yield write
    elif as_json:
        array = JsonArray(sys.stdout)
        yield array.write
        array.close()
    else:
        yield lambda result: None if "error" in result else typer.echo(_prediction_line(result, top_k))


def _prediction_line(result: dict, top_k: int) -> str:
    line = f"{printable(result['path'])}\t{printable(result['label'])}\t{result['probability']:.4f}"
    if top_k > 1:
        line += "\t" + ", ".join(f"{printable(t['label'])} {t['probability']:.4f}" for t in result["top_k"])
    return line


class _progress:
    """A rich progress bar on stderr: images done and images/s (the total is not counted first, so
    that a folder of millions starts at once); nothing when stderr is not a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        bar = self.bar = Progress(
            SpinnerColumn(),
            TextColumn("predicting: {task.completed:,} images, {task.fields[rate]} images/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        bar.start()
        task = bar.add_task("predict", total=None, rate="-")
        started = time.perf_counter()

        def advance(n: int) -> None:
            done = bar.tasks[0].completed + n
            bar.update(task, completed=done, rate=f"{done / max(time.perf_counter() - started, 1e-9):,.0f}")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.stop()
