"""The ``cifar-pack`` command line: parses options, calls one library function, prints the result.

Heavy modules (TensorFlow, tf2onnx) are imported inside the commands that need them, never at
import time, so ``cifar-pack predict`` and ``cifar-pack --help`` stay fast.
User errors (``CifarPackError``) become one line on stderr and a non-zero exit; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from .config import (
    DEFAULT_ATOL,
    DEFAULT_INT8,
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_OPSET,
    DEFAULT_PARITY_SAMPLES,
    CalibrateMethod,
    Precision,
    Recipe,
    Split,
    Strategy,
)
from .errors import CifarPackError, MissingExtraError, UsageError

app = typer.Typer(
    name="cifar-pack",
    help="Train a Keras CIFAR-style CNN, export it to a self-describing ONNX file, predict with onnxruntime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (logs go to stderr).")]
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="cifar10 (Keras download), cifar-10-python.tar.gz / cifar-10-batches-py/, cifar-10-binary.tar.gz / "
        "cifar-10-batches-bin/, or class folders (dir or .tar/.tar.gz).",
    ),
]


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"cifar-pack {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and verbose logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug


def main() -> None:
    """Console-script entry point: usage errors as one ``error:`` line on stderr, exit 2.

    Click's own handler would print a usage block and a boxed message (typer with rich); the
    docs promise one line, like every other error.
    """
    from typer._click import exceptions as click_exc  # typer ships its own copy of click

    try:
        code = app(standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:  # the help was printed: nothing more to say
        sys.exit(exc.exit_code)
    except click_exc.UsageError as exc:
        path = (exc.ctx.command_path if exc.ctx else "") or ""
        where = f" (see: cifar-pack {path.split(' ', 1)[1]} --help)" if " " in path else ""
        print(f"error: {printable(exc.format_message())}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click_exc.ClickException as exc:
        print(f"error: {printable(exc.format_message())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


# ---------------------------------------------------------------------------------------------
# Plumbing shared by every command


def _setup_logging() -> None:
    # Keep TensorFlow's C++ start-up chatter out of the user's terminal unless debugging.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if _state["debug"] else "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("cifar_pack")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if _state["debug"] else logging.INFO)
    root.propagate = False


def command(fn):
    """Wrap a command: logging set-up, one-line errors, exit codes (1 error, 2 usage, 130 Ctrl-C).

    Tracebacks are kept for bugs (anything that is not a CifarPackError) and for --debug.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except (CifarPackError, ImportError) as exc:
            if isinstance(exc, ImportError):
                # A runtime-only install (`pip install .`) lacks TensorFlow & co.: say which extra.
                exc = MissingExtraError.from_import(exc, fn.__name__.replace("_", "-"))
                if exc is None:
                    raise
            if _state["debug"]:
                raise
            typer.echo(f"error: {printable(exc)}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _state["debug"]:
                raise
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def printable(value) -> str:
    """``value`` as text safe for a terminal: control characters (ESC, BEL, CR, ...) escaped.

    Class names come from model metadata and file names from the user's disk: printed raw, an
    ``ESC[2J`` in either would clear the screen. JSON output stays exact (json escapes them).
    """
    return "".join(c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode() for c in str(value))


def emit(result: dict, as_json: bool, text: str | None = None) -> None:
    """Print the result: JSON on stdout with --json, else ``text`` (or key: value lines)."""
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    elif text is not None:
        typer.echo(text)
    else:
        for key, value in result.items():
            typer.echo(f"{printable(key)}: {printable(value)}")


# ---------------------------------------------------------------------------------------------
# train


def _recipe(name: Recipe):
    from .config import RECIPES

    return RECIPES[name.value]


@app.command()
@command
def train(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="cifar10 (Keras download), cifar-10-python.tar.gz / cifar-10-batches-py/, cifar-10-binary.tar.gz / "
            "cifar-10-batches-bin/, or class folders (dir or .tar/.tar.gz).",
            show_default="cifar10",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Run directory for checkpoints and reports.")] = Path("artifacts"),
    recipe: Annotated[
        Recipe, typer.Option("--recipe", help="default (AdamW one-cycle, tuned on validation) or seed (the notebook).")
    ] = Recipe.default,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (recipe's value if omitted: 20).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Global batch size (recipe: 128).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate (recipe's if omitted).")] = None,
    validation_split: Annotated[
        float | None,
        typer.Option("--validation-split", help="Stratified validation fraction in (0, 1).", show_default="0.2"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", min=0, help="Seed for the split, shuffling and augmentation.", show_default="1337"),
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            "--precision",
            help="auto: bf16 on a GPU or where the CPU has BF16/AMX and TensorFlow runs oneDNN.",
            show_default="auto",
        ),
    ] = None,
    strategy: Annotated[
        Strategy | None,
        typer.Option("--strategy", help="mirrored (several GPUs) or multi-worker (TF_CONFIG).", show_default="default"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the interrupted run in --out from its last completed epoch.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the seed CNN and keep the best epoch (by val_accuracy) as OUT/model.keras."""
    if resume:
        # A resumed run is the stored run: options that would change it are refused, by name.
        given = {
            "--data": data,
            "--recipe": recipe if recipe != Recipe.default else None,
            "--epochs": epochs,
            "--batch-size": batch_size,
            "--lr": lr,
            "--validation-split": validation_split,
            "--seed": seed,
            "--precision": precision,
            "--strategy": strategy,
        }
        for option, value in given.items():
            if value is not None:
                raise UsageError(
                    f"--resume continues the run in {out} with its stored settings; {option} cannot change it "
                    "(start a new run with another --out instead)"
                )
    data = data or "cifar10"
    config = _recipe(recipe).with_overrides(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        validation_split=validation_split,
        seed=seed,
        precision=precision.value if precision else None,
        strategy=strategy.value if strategy else None,
    )
    from .config import validate_config
    from .data import check_source

    validate_config(config)  # before importing TensorFlow: bad options answer instantly
    if not resume:
        check_source(data)
    from .errors import Interrupted

    try:
        from .train import train as run_training

        result = run_training(data, out, config, resume=resume).to_json()
    except KeyboardInterrupt:  # before fit() started (imports, data loading): train's own handler not reached
        raise Interrupted(f"interrupted before the first epoch finished: nothing was saved in {out}") from None
    text = (
        f"best val_accuracy {result['best_val_accuracy']:.4f} (epoch {result['best_epoch']}/{result['epochs']}), "
        f"test_accuracy {result['test_accuracy'] if result['test_accuracy'] is not None else 'n/a'}, "
        f"{result['seconds']:.0f}s, {result['images_per_second']:.0f} images/s\nmodel: {result['model']}"
    )
    emit(result, as_json, text)


@app.command("preview-augment")
@command
def preview_augment(
    data: DataOpt = "cifar10",
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = Path(
        "artifacts/augment-preview.png"
    ),
    recipe: Annotated[Recipe, typer.Option("--recipe", help="Whose augmentation to show.")] = Recipe.default,
    images: Annotated[int, typer.Option("--images", min=1, max=64, help="Source images (rows).")] = 8,
    variants: Annotated[
        int, typer.Option("--variants", min=1, max=16, help="Augmented copies per image (columns after the original).")
    ] = 6,
    seed: Annotated[int, typer.Option("--seed", help="Which images and which augmentations.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Write one PNG grid: each row an original image followed by augmented copies."""
    config = _recipe(recipe)
    from .augment_preview import write_preview
    from .data import check_source

    check_source(data)
    path = write_preview(data, output, config, images, variants, seed)
    emit(
        {"preview": str(path), "recipe": recipe.value, "images": images, "variants": variants}, as_json, f"wrote {path}"
    )


# ---------------------------------------------------------------------------------------------
# export / info


@app.command()
@command
def export(
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Export to ONNX (the only format; the flag is accepted for clarity).")
    ] = True,
    model: Annotated[
        Path,
        typer.Option("--model", help="Keras model (.keras or .h5), or an exported float32 .onnx to quantize (--int8)."),
    ] = Path("artifacts/model.keras"),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="ONNX path (default: the model's path with .onnx).")
    ] = None,
    opset: Annotated[int, typer.Option("--opset", min=13, max=21, help="ONNX opset.")] = DEFAULT_OPSET,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Images for the parity gate and int8 (any train source); default: the run's validation split.",
        ),
    ] = None,
    parity_samples: Annotated[
        int, typer.Option("--parity-samples", min=1, help="Images compared by the parity gate.")
    ] = DEFAULT_PARITY_SAMPLES,
    atol: Annotated[
        float, typer.Option("--atol", min=0.0, help="Largest allowed |Keras - ONNX| probability difference.")
    ] = DEFAULT_ATOL,
    int8: Annotated[
        bool, typer.Option("--int8", help="Also write <stem>.int8.onnx (static QDQ quantization).")
    ] = False,
    calibrate_method: Annotated[
        CalibrateMethod, typer.Option("--calibrate-method", help="int8 calibration (docs/int8.md).")
    ] = CalibrateMethod(DEFAULT_INT8.calibrate_method),
    calibration_samples: Annotated[
        int, typer.Option("--calibration-samples", min=1, help="Training images used to calibrate int8.")
    ] = DEFAULT_INT8.calibration_samples,
    max_accuracy_drop: Annotated[
        float, typer.Option("--max-accuracy-drop", min=0.0, help="int8 gate: most top-1 points it may lose.")
    ] = DEFAULT_MAX_ACCURACY_DROP,
    triton: Annotated[
        Path | None,
        typer.Option("--triton", help="Also write a Triton model repository here (the int8 model too with --int8)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a Keras model to ONNX, prove parity with Keras, embed labels and the input contract."""
    if not onnx:
        raise UsageError("--no-onnx: ONNX is the only export format")
    settings = replace(DEFAULT_INT8, calibration_samples=calibration_samples, calibrate_method=calibrate_method.value)
    if not model.exists():
        raise UsageError(f"--model {model}: no such file (train one with `cifar-pack train` first)")
    from .data import check_source

    if data is not None:
        check_source(data)
    if model.suffix == ".onnx":
        if not int8 and triton is None:
            raise UsageError(f"--model {model}: already ONNX; add --int8 to quantize it or --triton DIR")
        result, lines = {"onnx": str(model), "int8": None, "int8_report": None}, []
        if int8:
            from .quantize import int8_from_onnx

            path, report = int8_from_onnx(model, data, settings=settings, max_accuracy_drop=max_accuracy_drop)
            result |= {"int8": str(path), "int8_report": report}
            lines.append(_int8_line(path, report))
        if triton is not None:
            lines.append(_write_triton(result, triton))
        emit(result, as_json, "\n".join(lines))
        return
    from .export import export_onnx

    result = export_onnx(
        model,
        output,
        opset=opset,
        data=data,
        parity_samples=parity_samples,
        atol=atol,
        int8=int8,
        int8_settings=settings,
        max_accuracy_drop=max_accuracy_drop,
    ).to_json()
    p = result["parity"]
    text = (
        f"wrote {result['onnx']} (parity on {p['samples']} {p['inputs']}: max abs diff {p['max_abs_diff']:.2g}, "
        f"top-1 agreement {p['top1_agreement']:.0%})"
    )
    if result["int8"]:
        text += "\n" + _int8_line(result["int8"], result["int8_report"])
    if triton is not None:
        text += "\n" + _write_triton(result, triton)
    emit(result, as_json, text)


def _write_triton(result: dict, root: Path) -> str:
    """Add the exported model(s) in ``result`` to a Triton repository; the line that says so."""
    from .triton import write_repository

    folders = write_repository([p for p in (result["onnx"], result["int8"]) if p], root)
    result["triton"] = [str(f) for f in folders]
    return f"wrote Triton repository {root}: {', '.join(f.name for f in folders)}"


def _int8_line(path, r: dict) -> str:
    return (
        f"wrote {path} (accuracy {r['int8_accuracy']:.4f} vs {r['float32_accuracy']:.4f}, "
        f"drop {r['accuracy_drop_points']:.2f} points, measured on {r['measured_on']['int8_kernel']}; "
        f"AVX2 saturation-free: {'yes' if r['avx2']['saturation_free'] else 'NO'}; "
        f"{r['speedup_batch256']:.2f}x at batch 256, {r['speedup_batch1']:.2f}x at batch 1)"
    )


@app.command()
@command
def info(
    model: Annotated[
        Path | None, typer.Argument(help="ONNX model (default: the one `cifar-pack predict` uses).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print an ONNX model's input/output contract and its metadata."""
    from .predict import describe_model

    result = describe_model(model)
    if as_json:
        emit(result, True)
        return
    typer.echo(f"model: {result['path']}")
    q = result["metadata"].get("quantization")
    if isinstance(q, dict) and isinstance(q.get("measured_on"), dict):
        typer.echo(
            f"int8: {q.get('format')}; top-1 drop {q.get('accuracy_drop_points', float('nan')):.2f} points, "
            f"measured on {q['measured_on'].get('cpu')} ({q['measured_on'].get('int8_kernel')}); AVX2 saturation-free: "
            f"{'yes' if (q.get('avx2') or {}).get('saturation_free') else 'no'}"
        )
    for kind in ("inputs", "outputs"):
        for io in result[kind]:
            typer.echo(f"{kind[:-1]}: {io['name']} {io['type']} {io['shape']}")
    for key, value in sorted(result["metadata"].items()):
        text = json.dumps(value)
        # Metadata is the model author's text: cap what a terminal gets (--json prints it all).
        shown = text if len(text) <= 2000 else f"{text[:2000]}... ({len(text):,} characters; see --json)"
        typer.echo(f"{printable(key)}: {printable(shown)}")


# ---------------------------------------------------------------------------------------------
# predict


@app.command()
@command
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, directories (recursive) or glob patterns.")],
    model: Annotated[
        Path | None, typer.Option("--model", help="ONNX model (default: artifacts/model.onnx, else the bundled model).")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Also list the K most likely classes.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per onnxruntime call.")] = 256,
    device: Annotated[
        str, typer.Option("--device", help="auto, cpu, cuda, rocm, coreml, dml, openvino (strict unless auto).")
    ] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="onnxruntime intra-op threads.")] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option("--max-pixels", min=1, help="Refuse images larger than this many pixels [default: 50000000]."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify images with onnxruntime (TensorFlow is never loaded). Exit 1 if any input failed."""
    from .images import find_images
    from .predict import Predictor

    if max_pixels is not None:
        os.environ["CIFAR_PACK_MAX_PIXELS"] = str(max_pixels)  # read by images.max_pixels()
    predictor = Predictor(model, device=device, threads=threads)
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
        self.total, self.enabled, self.bar = total, enabled and sys.stderr.isatty(), None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task("predicting", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


# ---------------------------------------------------------------------------------------------
# serve


@app.command()
@command
def serve(
    model: Annotated[
        Path | None, typer.Option("--model", help="ONNX model (default: artifacts/model.onnx, else the bundled model).")
    ] = None,
    model_repository: Annotated[
        Path | None,
        typer.Option(
            "--model-repository",
            help="Serve every model of a Triton-style repository (DIR/<name>/<version>/model.onnx).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (other than loopback needs an API key).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8000,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, ... as for predict.")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="onnxruntime intra-op threads.")] = None,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", min=1, help="Most images per onnxruntime call.")
    ] = 64,
    max_queue_delay_ms: Annotated[
        float, typer.Option("--max-queue-delay-ms", min=0.0, help="How long a request waits for others to batch with.")
    ] = 2.0,
    max_queue_images: Annotated[
        int, typer.Option("--max-queue-images", min=1, help="Images waiting before new requests get 503.")
    ] = 4096,
    max_images: Annotated[int, typer.Option("--max-images", min=1, help="Most images in one request.")] = 1024,
    max_request_mb: Annotated[
        float, typer.Option("--max-request-mb", min=0.001, help="Largest request body, MB.")
    ] = 32.0,
    body_timeout_s: Annotated[
        float, typer.Option("--body-timeout-s", min=0.1, help="Seconds a client may take to send a body (then 408).")
    ] = 30.0,
    allow_unauthenticated: Annotated[
        bool, typer.Option("--allow-unauthenticated", help="Allow a non-loopback --host without CIFAR_PACK_API_KEY.")
    ] = False,
) -> None:
    """Serve the model over HTTP: the Open Inference Protocol (KServe v2 / Triton), /predict, /metrics."""
    from .serve import run_server
    from .serve.app import Limits, api_key_from_env
    from .serve.models import load_models

    models = load_models(model, model_repository, device=device, threads=threads)
    run_server(
        models,
        host=host,
        port=port,
        api_key=api_key_from_env(),
        allow_unauthenticated=allow_unauthenticated,
        max_batch_size=max_batch_size,
        max_queue_delay_ms=max_queue_delay_ms,
        max_queue_images=max_queue_images,
        limits=Limits(int(max_request_mb * 2**20), max_images, body_timeout_s),
    )


# ---------------------------------------------------------------------------------------------
# evaluate / benchmark


@app.command()
@command
def evaluate(
    data: DataOpt = "cifar10",
    model: Annotated[
        Path | None, typer.Option("--model", help=".onnx (onnxruntime only) or .keras/.h5; default as predict.")
    ] = None,
    split: Annotated[
        Split | None,
        typer.Option(
            "--split", help="val is the training run's validation split; default: test when present, else train."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory for report.json and confusion.png.")] = Path(
        "artifacts/eval"
    ),
    model_card: Annotated[
        Path | None, typer.Option("--model-card", help="Also write a Markdown model card here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy, per-class precision/recall, confusion matrix (PNG) and class balance on a labelled set."""
    from .data import check_source
    from .evaluate import evaluate as run_evaluation

    check_source(data)
    report = run_evaluation(model, data, split.value if split else None, out, model_card)
    if as_json:
        emit(report, True)
        return
    typer.echo(
        f"{report['model']} on {report['data']} [{report['split']}]: accuracy {report['accuracy']:.4f} "
        f"({report['samples']} images)"
    )
    for name, m in report["per_class"].items():
        typer.echo(f"  {name:<14} precision {m['precision']:.3f}  recall {m['recall']:.3f}  support {m['support']}")
    typer.echo(f"confusion matrix: {report['confusion_png']}")
    if report.get("model_card"):
        typer.echo(f"model card: {report['model_card']}")


@app.command()
@command
def benchmark(
    model: Annotated[
        Path, typer.Option("--model", help="Keras model; its .onnx and .int8.onnx are exported if missing.")
    ] = Path("artifacts/model.keras"),
    data: Annotated[
        str | None, typer.Option("--data", help="Labelled images (default: the training run's validation split).")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Images for the accuracy column.")] = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """Compare Keras, ONNX float32 and ONNX int8: size, accuracy, latency, throughput."""
    if not model.exists():
        raise UsageError(f"--model {model}: no such file (train one with `cifar-pack train` first)")
    from .benchmark import run_benchmark
    from .data import check_source

    if data is not None:
        check_source(data)
    result = run_benchmark(model, data, samples)
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{result['machine']['model']}, {result['machine']['cores']} cores, "
        f"{' '.join(result['machine']['flags'])}"
    )
    for column in ("format", "size MB", "top-1", "p50 ms (batch 1)", "images/s (batch 256)", "speedup vs Keras"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for r in result["rows"]:
        table.add_row(
            r["format"],
            f"{r['size_mb']:.2f}",
            f"{r['accuracy']:.4f}",
            f"{r['latency_ms_p50']:.3f}",
            f"{r['throughput_batch256']:.0f}",
            f"{r['speedup_vs_keras']:.2f}x",
        )
    Console(stderr=as_json).print(table)
    Console(stderr=as_json).print(f"method: {result['method']}")
    if as_json:
        emit(result, True)
