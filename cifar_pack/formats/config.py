"""The export steps' defaults, one home: the parity gate's and int8's (the library's and the
command line's). Nothing here imports anything heavy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CalibrateMethod(StrEnum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


DEFAULT_PARITY_SAMPLES = 1000  # validation images compared, Keras vs onnxruntime
DEFAULT_ATOL = 1e-5  # largest |Keras - onnxruntime| probability difference allowed
DEFAULT_MAX_ACCURACY_DROP = 1.0  # int8 gate, top-1 points on the validation split


@dataclass(frozen=True)
class Int8Settings:
    """What ``quantize_static`` is asked for; recorded in the int8 model's metadata.

    The defaults were chosen on the validation split, both CPU kinds: docs/int8.md.

    ``activations``/``weights``: "uint8" or "int8". ``reduce_range``: 7-bit weights, which
    onnxruntime's AVX2 kernel cannot saturate (cifar_pack/formats/int8.py). ``per_channel``: one
    scale per output channel of each Conv/Gemm weight.
    """

    activations: str = "uint8"
    weights: str = "int8"
    per_channel: bool = True
    reduce_range: bool = True
    calibrate_method: str = "percentile"  # a CalibrateMethod value
    calibration_samples: int = 400

    def describe(self) -> str:
        bits = "7-bit (reduce_range)" if self.reduce_range and self.weights == "int8" else "8-bit"
        per = "per-channel" if self.per_channel else "per-tensor"
        return f"QDQ, {per} {bits} {self.weights} weights, {self.activations} activations"


DEFAULT_INT8 = Int8Settings()
