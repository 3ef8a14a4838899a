"""Parity gate: does onnxruntime compute what Keras computes?

Separate from conversion (as in optimum's exporter): compare output names and shapes first,
then values, at two batch sizes (proving the batch axis is dynamic); collect every failure and
raise one ``ParityError``. The report travels into the ONNX metadata and the sidecar JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..runtime.batching import run_batched
from ..runtime.config import INPUT_NAME, OUTPUT_NAME
from ..runtime.errors import ParityError
from .config import DEFAULT_ATOL

BATCH_SIZES = (256, 7)  # a large batch and an odd small one: both must agree with Keras


@dataclass
class ParityReport:
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    atol: float
    passed: bool
    batch_sizes: tuple[int, ...]
    inputs: str  # where the images came from; "RANDOM INPUTS ..." when no real images were had

    def to_json(self) -> dict:
        report = asdict(self)
        report["batch_sizes"] = list(self.batch_sizes)
        return report


def check_parity(
    keras_fn: Callable[[np.ndarray], np.ndarray],
    onnx_bytes: bytes,
    images: np.ndarray,
    atol: float = DEFAULT_ATOL,
    inputs: str = "real images",
) -> ParityReport:
    """Run Keras and onnxruntime on ``images`` and compare probabilities.

    Args:
        keras_fn: (N, 32, 32, 3) uint8 -> (N, C) float32 probabilities, the float32 Keras model.
        onnx_bytes: the serialized ONNX model under test.
        images: (N, 32, 32, 3) uint8 RGB.
        atol: largest allowed absolute difference of any probability.
        inputs: a description of the images, recorded in the report.

    Returns:
        The report (``passed`` True).

    Raises:
        ParityError: names, shapes, values or top-1 differ; the message lists every failure.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    failures = []
    in_names = [i.name for i in session.get_inputs()]
    out_names = [o.name for o in session.get_outputs()]
    if in_names != [INPUT_NAME] or out_names != [OUTPUT_NAME]:
        failures.append(f"graph names are {in_names} -> {out_names}, expected ['{INPUT_NAME}'] -> ['{OUTPUT_NAME}']")
        raise ParityError("parity failed: " + "; ".join(failures))

    expected = run_batched(keras_fn, images, BATCH_SIZES[0])
    max_diff, sum_diff, agree = 0.0, 0.0, 1.0
    for batch in BATCH_SIZES:
        got = run_batched(lambda x: session.run(None, {INPUT_NAME: x})[0], images, batch)
        if got.shape != expected.shape:
            failures.append(f"batch {batch}: output shape {got.shape}, Keras gives {expected.shape}")
            continue
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        max_diff = max(max_diff, float(diff.max()))
        sum_diff = max(sum_diff, float(diff.mean()))
        agree = min(agree, float(np.mean(got.argmax(1) == expected.argmax(1))))
    if max_diff > atol:
        failures.append(f"max abs diff {max_diff:.3g} > atol {atol:g}")
    if agree < 1.0:
        failures.append(
            f"top-1 agreement {agree:.2%} < 100% ({round((1 - agree) * len(images))} of {len(images)} differ)"
        )
    report = ParityReport(
        samples=int(len(images)),
        max_abs_diff=max_diff,
        mean_abs_diff=sum_diff,
        top1_agreement=agree,
        atol=atol,
        passed=not failures,
        batch_sizes=BATCH_SIZES,
        inputs=inputs,
    )
    if failures:
        raise ParityError(f"parity failed on {len(images)} {inputs}: " + "; ".join(failures), report)
    return report
