"""Predictions as columns, for engines that move data in column batches (Ray Data, Spark, Arrow).

Both adapters (``cifar_pack.ray``, ``cifar_pack.spark``) decode a batch of files with the
predictor's own decoder, then call ``classify_columns``: one onnxruntime call for the batch, and
a row per input whether it decoded or not (an unreadable file gets its error, never a failed job).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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


# Images per engine call when decoding overlaps inference (classify_encoded): small enough that
# decoding the next chunk runs beside most of the batch's inference, large enough for the engine.
OVERLAP_CHUNK = 64


def classify_encoded(
    predictor: Predictor, contents: np.ndarray | list, names: list[str] | None = None, top_k: int = 1
) -> Columns:
    """``decode_all`` then ``classify_columns``, with the next chunk decoded in a thread while the
    engine runs on this one (onnxruntime releases the GIL), as ``predict`` does over a folder: a
    Ray actor or Spark task given one CPU then keeps a second busy instead of decoding and
    inferring in turn. The same columns, in the same order."""
    starts = range(0, len(contents), OVERLAP_CHUNK)
    if len(starts) <= 1:
        return classify_columns(predictor, decode_all(predictor, contents, names), top_k)
    with ThreadPoolExecutor(1, thread_name_prefix="cifar-pack-decode") as pool:
        decoded = [
            pool.submit(
                decode_all, predictor, contents[i : i + OVERLAP_CHUNK], names[i : i + OVERLAP_CHUNK] if names else None
            )
            for i in starts
        ]
        parts = [classify_columns(predictor, future.result(), top_k) for future in decoded]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
