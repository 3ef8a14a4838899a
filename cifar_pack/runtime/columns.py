"""Predictions as columns, for engines that move data in column batches (Ray Data, Spark, Arrow).

Both adapters (``cifar_pack.ray``, ``cifar_pack.spark``) decode a batch of files with the
predictor's own decoder, then call ``classify_columns``: one onnxruntime call for the batch, and
a row per input whether it decoded or not (an unreadable file gets its error, never a failed job).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .images import array_to_model_input, decode_or_error
from .predictor import Predictor

Columns = dict[str, np.ndarray]


def decode_all(
    predictor: Predictor, contents: np.ndarray | list, names: list[str] | None = None
) -> list[np.ndarray | str]:
    """Encoded files -> (32, 32, 3) uint8 each, or the one-line reason it could not be read."""
    return [
        decode_or_error(bytes(data), names[i] if names else "content", predictor.max_pixels)
        for i, data in enumerate(contents)
    ]


def convert_all(images: np.ndarray | list) -> list[np.ndarray | str]:
    """Decoded HxWxC arrays of any size -> (32, 32, 3) uint8 each, or why not."""
    out: list[np.ndarray | str] = []
    for i, image in enumerate(images):
        try:
            out.append(array_to_model_input(np.asarray(image), name=f"image {i}"))
        except InputError as exc:
            out.append(str(exc))
    return out


def classify_columns(predictor: Predictor, inputs: list[np.ndarray | str], top_k: int = 1) -> Columns:
    """``label``, ``probability``, ``error`` (None where the input was read), and with ``top_k`` > 1
    ``top_k_labels`` and ``top_k_probabilities``, (N, K) best first; error rows hold None and NaN."""
    good = [x for x in inputs if isinstance(x, np.ndarray)]
    rows = iter(predictor.predict_proba(np.stack(good)) if good else [])
    k = min(top_k, predictor.num_classes)
    labels = np.full((len(inputs), k), None, dtype=object)
    probabilities = np.full((len(inputs), k), np.nan, dtype=np.float32)
    errors = np.full(len(inputs), None, dtype=object)
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            errors[i] = item
            continue
        ranked = predictor.describe(next(rows), k)["top_k"]
        labels[i] = [t["label"] for t in ranked]
        probabilities[i] = [t["probability"] for t in ranked]
    columns = {"label": labels[:, 0], "probability": probabilities[:, 0], "error": errors}
    if top_k > 1:
        columns |= {"top_k_labels": labels, "top_k_probabilities": probabilities}
    return columns
