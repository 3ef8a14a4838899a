"""The one batched-inference loop and the one timing helper every stage shares.

Predict, evaluate, the parity gate, the int8 gate and the benchmark all run a model over more
images than one call should hold, and the gates and benchmarks time model calls: both are
written once, here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

BatchFn = Callable[[np.ndarray], np.ndarray]  # (n, 32, 32, 3) uint8 -> (n, C) float32


def run_batched(fn: BatchFn, images: np.ndarray, batch_size: int) -> np.ndarray:
    """``fn`` over ``images`` (N, 32, 32, 3) in slices of ``batch_size``: (N, C), rows in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return np.concatenate([fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def call_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls.

    The untimed call also matters between two timed functions on 2 cores: onnxruntime and
    TensorFlow spin-wait briefly after a run, which would bill one model's idle threads to the next.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The median of ``call_seconds``."""
    return statistics.median(call_seconds(fn, repeats, warmup))
