"""``cifar-pack evaluate`` (accuracy, per-class metrics, confusion matrix) and ``cifar-pack benchmark``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..formats.config import DEFAULT_MAX_ACCURACY_DROP
from ..runtime.config import (
    DEFAULT_ENGINE,
    DEFAULT_EVAL_DIR,
    DEFAULT_KERAS_MODEL,
    DEFAULT_PRECISION,
    KERAS_SUFFIXES,
    Split,
)
from ..runtime.data import check_source
from ..runtime.errors import UsageError
from .app import app
from .common import DataOpt, EngineOpt, JsonOpt, PrecisionOpt, command, emit


@app.command()
@command
def evaluate(
    data: DataOpt = "cifar10",
    model: Annotated[Path | None, typer.Option("--model", help=".onnx or .keras/.h5; default as predict.")] = None,
    engine: EngineOpt = DEFAULT_ENGINE,
    precision: PrecisionOpt = DEFAULT_PRECISION,
    split: Annotated[
        Split | None,
        typer.Option(
            "--split", help="val is the training run's validation split; default: test when present, else train."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Directory for report.json, confusion.png and reliability.png.")
    ] = DEFAULT_EVAL_DIR,
    model_card: Annotated[
        Path | None, typer.Option("--model-card", help="Also write a Markdown model card here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Accuracy, per-class precision/recall, confusion matrix (PNG) and class balance on a labelled set."""
    from ..runtime.evaluation import evaluate as run_evaluation

    check_source(data)
    if model is not None and model.suffix in KERAS_SUFFIXES:
        if engine != DEFAULT_ENGINE or precision != DEFAULT_PRECISION:
            raise UsageError(
                f"--model {model}: --engine and --precision are for .onnx models; Keras runs in TensorFlow"
            )
        from ..training.model import keras_classifier  # TensorFlow only for a Keras model

        classifier = keras_classifier(model)
    else:
        from ..runtime.engines import EngineSettings
        from ..runtime.evaluation import onnx_classifier

        classifier = onnx_classifier(model, EngineSettings.of(engine, precision))
    report = run_evaluation(classifier, data, split.value if split else None, out, model_card)
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
    typer.echo(f"expected calibration error: {report['ece']:.2%} (reliability diagram: {report['reliability_png']})")
    if report.get("model_card"):
        typer.echo(f"model card: {report['model_card']}")


@app.command()
@command
def benchmark(
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            help="Keras model (its .onnx and .int8.onnx are built for the run if missing), or a float32 .onnx.",
        ),
    ] = DEFAULT_KERAS_MODEL,
    data: Annotated[
        str | None, typer.Option("--data", help="Labelled images (default: the training run's validation split).")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Images for the accuracy column.")] = 10_000,
    max_accuracy_drop: Annotated[
        float,
        typer.Option("--max-accuracy-drop", min=0.0, help="The int8 gate export applies, shown in the int8 row."),
    ] = DEFAULT_MAX_ACCURACY_DROP,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep built .onnx files beside the model (int8 only if it passes the gate)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare Keras, ONNX float32 and ONNX int8: size, accuracy, latency, throughput, the int8 gate."""
    if not model.exists():
        raise UsageError(f"--model {model}: no such file (train one with `cifar-pack train` first)")
    from ..training.benchmark import run_benchmark

    if data is not None:
        check_source(data)
    result = run_benchmark(model, data, samples, max_accuracy_drop=max_accuracy_drop, keep=keep)
    _print_table(result, as_json)
    if as_json:
        emit(result, True)


def _gate_cell(gate: dict | None) -> str:
    if gate is None:
        return "-"
    drop, bound = gate["accuracy_drop_points"], gate["allowed_drop_points"]
    return f"pass {drop:.2f}" if gate["passed"] else f"FAIL {drop:.2f} > {bound:g}"


def _print_table(result: dict, as_json: bool) -> None:
    """The rows as a table, on stderr when stdout carries the JSON."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{result['machine']['model']}, {result['machine']['cores']} cores, "
        f"{' '.join(result['machine']['flags'])}"
    )
    baseline = "Keras" if result["baseline"] == "keras" else result["baseline"]
    columns = ("format", "MB", "top-1", "ms, batch 1", "img/s, batch 256", f"vs {baseline}", "int8 gate: drop")
    for column in columns:
        table.add_column(column, justify="left" if column == "format" else "right")
    for r in result["rows"]:
        table.add_row(
            r["format"],
            f"{r['size_mb']:.2f}",
            f"{r['accuracy']:.4f}",
            f"{r['latency_ms_p50']:.3f}",
            f"{r['throughput_batch256']:.0f}",
            f"{r['speedup']:.2f}x",
            _gate_cell(r["gate"]),
        )
    console = Console(stderr=as_json)
    console.print(table)
    console.print(f"method: {result['method']}")
    failed = [r for r in result["rows"] if r["gate"] and not r["gate"]["passed"]]
    for r in failed:
        console.print(f"{r['format']} fails the accuracy gate: `cifar-pack export --int8` would not write this file")
    if result["int8_advice"]:
        console.print(f"note: {result['int8_advice']}")
