"""``cifar-pack export`` (Keras -> ONNX, int8, a Triton repository) and ``cifar-pack info``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..formats.config import (
    DEFAULT_ATOL,
    DEFAULT_INT8,
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_PARITY_SAMPLES,
    CalibrateMethod,
)
from ..runtime.config import DEFAULT_ENGINE, DEFAULT_KERAS_MODEL, DEFAULT_PRECISION
from ..runtime.data import check_source
from ..runtime.errors import UsageError
from ..training.config import DEFAULT_OPSET
from .app import app
from .common import EngineOpt, JsonOpt, PrecisionOpt, command, emit, printable

if TYPE_CHECKING:
    from ..formats.pipeline import Steps


@app.command()
@command
def export(
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx", help="Export to ONNX (the only format; the flag is accepted for clarity).", show_default=False
        ),
    ] = True,
    model: Annotated[
        Path,
        typer.Option("--model", help="Keras model (.keras or .h5), or an exported float32 .onnx to quantize (--int8)."),
    ] = DEFAULT_KERAS_MODEL,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="ONNX path (default: the model's path with .onnx); with an .onnx --model, rewrite its graph there.",
        ),
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
    flip_average: Annotated[
        bool,
        typer.Option(
            "--flip-average",
            help="Average each image's probabilities with its mirror image's in the graph (half the images/s).",
        ),
    ] = False,
    calibrate: Annotated[
        bool | None,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="Fit a temperature on the validation split and fold it into the graph, so the probabilities "
            "mean what they say (ECE in `evaluate`). Not int8's --calibrate-method.",
            show_default="on when there are validation images and a new file is written",
        ),
    ] = None,
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
    if data is not None:
        check_source(data)
    if model.suffix == ".onnx":
        if flip_average:
            raise UsageError(f"--flip-average: needs the Keras model (--model {model} is already ONNX)")
        from ..formats.pipeline import Steps

        steps = Steps(int8=int8, int8_settings=settings, max_accuracy_drop=max_accuracy_drop, calibrate=calibrate)
        _export_from_onnx(model, output, data, steps, triton, as_json)
        return
    from ..training.export import export_onnx

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
        flip_average=flip_average,
        calibrate=calibrate,
    ).to_json()
    p = result["parity"]
    text = (
        f"wrote {result['onnx']}{' with flip averaging' if flip_average else ''} "
        f"(parity on {p['samples']} {p['inputs']}: max abs diff {p['max_abs_diff']:.2g}, "
        f"top-1 agreement {p['top1_agreement']:.0%})"
    )
    if result["calibration"]:
        text += "\n" + _calibration_line(result["calibration"])
    if result["int8"]:
        text += "\n" + _int8_line(result["int8"], result["int8_report"])
    if triton is not None:
        text += "\n" + _write_triton(result, triton)
    emit(result, as_json, text)


def _export_from_onnx(
    model: Path, output: Path | None, data: str | None, steps: Steps, triton: Path | None, as_json: bool
) -> None:
    """An exported float32 .onnx: rewrite its graph (--output), quantize it (no TensorFlow), add it
    to a Triton repository."""
    if not steps.int8 and not steps.calibrate and triton is None and output is None:
        raise UsageError(
            f"--model {model}: already ONNX; add --int8 to quantize it, --calibrate, --triton DIR, or --output to "
            "rewrite its graph"
        )
    from ..formats.pipeline import export_onnx_file

    result = export_onnx_file(model, output, data, steps)
    lines = []
    if result["parity"] is not None:
        max_diff = result["parity"]["max_abs_diff"]
        lines.append(f"wrote {result['onnx']} (graph simplified; max abs diff {max_diff:.2g} vs the source)")
    if result["calibration"]:
        lines.append(_calibration_line(result["calibration"]))
    if result["int8"]:
        lines.append(_int8_line(result["int8"], result["int8_report"]))
    if triton is not None:
        lines.append(_write_triton(result, triton))
    emit(result, as_json, "\n".join(lines))


def _write_triton(result: dict, root: Path) -> str:
    """Add the exported model(s) in ``result`` to a Triton repository; the line that says so."""
    from ..serve.repository import write_repository

    folders = write_repository([p for p in (result["onnx"], result["int8"]) if p], root)
    result["triton"] = [str(f) for f in folders]
    return f"wrote Triton repository {root}: {', '.join(f.name for f in folders)}"


def _calibration_line(r: dict) -> str:
    return (
        f"calibrated: temperature {r['temperature']:.3f} fitted on {r['samples']} validation images; "
        f"expected calibration error {r['ece_before']:.2%} -> {r['ece_after']:.2%}"
    )


def _int8_line(path: str | Path, r: dict) -> str:
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
    engine: EngineOpt = DEFAULT_ENGINE,
    precision: PrecisionOpt = DEFAULT_PRECISION,
    as_json: JsonOpt = False,
) -> None:
    """Print an ONNX model's input/output contract, what runs it (engine, precision, kernels), its metadata."""
    from ..runtime.engines import EngineSettings, sharing_cores
    from ..runtime.predictor import describe_model

    result = describe_model(model, sharing_cores(EngineSettings.of(engine, precision)))  # as predict and serve run it
    if as_json:
        emit(result, True)
        return
    typer.echo(f"model: {result['path']}")
    ran = result["engine"]
    spins = {True: ", idle threads spin", False: ", idle threads sleep"}.get(ran.get("spinning"), "")
    typer.echo(f"engine: {ran['engine']} {ran['version']} on {ran['device']}, {ran['precision']}{spins}")
    for layer, kernels in (ran.get("kernels") or {}).items():
        typer.echo(f"  {layer}: {kernels}")
    if ran.get("int8"):
        typer.echo(f"  int8: {ran['int8']}")
    q = result["metadata"].get("quantization")
    if isinstance(q, dict) and isinstance(q.get("measured_on"), dict):
        typer.echo(
            f"int8: {q.get('format')}; top-1 drop {q.get('accuracy_drop_points', float('nan')):.2f} points, "
            f"measured on {q['measured_on'].get('cpu')} ({q['measured_on'].get('int8_kernel')}); AVX2 saturation-free: "
            f"{'yes' if (q.get('avx2') or {}).get('saturation_free') else 'no'}"
        )
    for line in result["advice"]:
        typer.echo(f"advice: {line}")
    for kind in ("inputs", "outputs"):
        for io in result[kind]:
            typer.echo(f"{kind[:-1]}: {io['name']} {io['type']} {io['shape']}")
    for key, value in sorted(result["metadata"].items()):
        text = json.dumps(value)
        # Metadata is the model author's text: cap what a terminal gets (--json prints it all).
        shown = text if len(text) <= 2000 else f"{text[:2000]}... ({len(text):,} characters; see --json)"
        typer.echo(f"{printable(key)}: {printable(shown)}")
