"""What an infer request asks for, in no transport's format: the images, and which output.

HTTP (``protocol.py``) and gRPC (``grpc.py``) parse their wire formats into ``InferRequest`` and
share the shape check and the classification extension's strings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..runtime.config import INPUT_NAME, INPUT_SHAPE
from .errors import InvalidInput, TooLarge


@dataclass
class OutputSpec:
    binary: bool
    classification: int  # 0: the probabilities themselves; k: the top-k "p:index:label" strings


@dataclass
class InferRequest:
    id: str | None
    images: np.ndarray  # (N, 32, 32, 3) uint8
    output: OutputSpec


def check_shape(shape: list, max_images: int) -> int:
    """N of an ``images`` tensor shape [N, 32, 32, 3]; InvalidInput for another shape, TooLarge over the cap."""
    if (
        len(shape) != 4
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or tuple(shape[1:]) != INPUT_SHAPE
        or shape[0] < 1
    ):
        raise InvalidInput(f"input '{INPUT_NAME}' must have shape [N, 32, 32, 3], got {str(shape)[:80]}")
    if shape[0] > max_images:
        raise TooLarge(f"{shape[0]} images in one request; the limit is {max_images}")
    return int(shape[0])


def classification_strings(probs: np.ndarray, k: int, labels: list[str]) -> list[list[str]]:
    """Triton's classification extension: per image the ``k`` best as "value:index:label", 6 decimals."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[f"{probs[n, i]:f}:{i}:{labels[i]}" for i in row] for n, row in enumerate(order)]


def bytes_tensor(strings: list[list[str]]) -> bytes:
    """A BYTES tensor's raw form, as both protocols send it: per element a little-endian uint32 length, then bytes."""
    return b"".join(struct.pack("<I", len(b)) + b for row in strings for b in (s.encode() for s in row))
