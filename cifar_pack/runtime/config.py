"""The image contract every cifar-pack model keeps, and the runtime side's defaults: one home.

Nothing here imports anything heavy, so the command line reads its defaults cheaply.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from pathlib import Path

# The image contract of every model cifar-pack builds or exports: (32, 32, 3) uint8 RGB, NHWC.
IMAGE_SIZE = 32
CHANNELS = 3
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, CHANNELS)
INPUT_BYTES = IMAGE_SIZE * IMAGE_SIZE * CHANNELS  # 3072 uint8 values per image

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"

# The Toronto release's label order (batches.meta), which is also alphabetical.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# Stratified validation split shared by train, export, evaluate and benchmark.
DEFAULT_VALIDATION_SPLIT = 0.2
DEFAULT_SEED = 1337

# Where the commands write and read a run's files when no path is given (relative to the cwd).
ARTIFACTS = Path("artifacts")
DEFAULT_KERAS_MODEL = ARTIFACTS / "model.keras"  # what train writes and export, evaluate, benchmark read
DEFAULT_EVAL_DIR = ARTIFACTS / "eval"
# Which model `predict`, `evaluate`, `info` and `serve` use when none is named.
DEFAULT_MODEL = ARTIFACTS / "model.onnx"
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "pretrained" / "cifar10.onnx"

DEFAULT_BATCH_SIZE = 256  # images per onnxruntime call in predict
DEFAULT_DEVICE = "auto"


class Engine(StrEnum):
    """What runs the .onnx file (runtime/engines.py). OpenVINO reads the same file, no conversion."""

    onnxruntime = "onnxruntime"
    openvino = "openvino"


class ComputePrecision(StrEnum):
    """Float arithmetic of the engine: f32 unless asked. bf16 is OpenVINO's (AVX-512 BF16 or AMX);
    an int8 file's quantized layers run in int8 either way."""

    f32 = "f32"
    bf16 = "bf16"


DEFAULT_ENGINE = Engine.onnxruntime
DEFAULT_PRECISION = ComputePrecision.f32

# The model sees 32x32 pixels, so no input needs to be decoded at 100 megapixels (Pillow's own
# bomb limit is 89.5 MP with a warning, 179 MP refused). Above this an image is refused from its
# header, before any pixel is decoded. Raise it with --max-pixels or CIFAR_PACK_MAX_PIXELS.
DEFAULT_MAX_PIXELS = 50_000_000
MAX_PIXELS_VARIABLE = "CIFAR_PACK_MAX_PIXELS"


class Split(StrEnum):
    """A labelled set's named parts (``val``: the training run's stratified validation split)."""

    train = "train"
    val = "val"
    test = "test"


# Keras model files: export, evaluate and benchmark read them (the [train] extra); predict and
# serve refuse them with the export command to run.
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def choices(enum: type[Enum]) -> list[str]:
    """The values of a choice Enum, in order: what the library accepts and what errors list."""
    return [member.value for member in enum]
