"""Runtime: ``Predictor`` on onnxruntime (or OpenVINO). Never imports tensorflow, keras or tf2onnx.

>>> from cifar_pack import Predictor
>>> p = Predictor()                                  # artifacts/model.onnx, else the bundled model
>>> p.predict("cat.png", top_k=3)[0]["label"]
'cat'
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Union

import numpy as np

from . import images as img_mod
from .batching import run_batched
from .config import (
    BUNDLED_MODEL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_ENGINE,
    DEFAULT_MODEL,
    DEFAULT_PRECISION,
    INPUT_SHAPE,
    ComputePrecision,
    Engine,
)
from .engines import EngineSettings, TensorSpec, open_backend
from .errors import CifarPackError, InputError, ModelError
from .onnx_file import read_metadata
from .sysinfo import cpu_info, engine_advice

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)


class Ranked(TypedDict):
    """One class of a prediction: its name, its index in the model's output, its probability."""

    label: str
    index: int
    probability: float


class Prediction(Ranked):
    """The best class, and the ``top_k`` best (the best first, itself included)."""

    top_k: list[Ranked]


class FileResult(TypedDict, total=False):
    """What ``predict_files`` yields per file: ``path`` and a ``Prediction``'s keys, or ``path`` and ``error``."""

    path: str
    label: str
    index: int
    probability: float
    top_k: list[Ranked]
    error: str  # one line naming the file and what is wrong with it


# What ``Predictor.predict`` takes: a path, a PIL image or an HWC array; or many of them (a list,
# or an NHWC array).
ImageInput = Union[str, os.PathLike, "Image.Image", np.ndarray]


def resolve_model(model: str | os.PathLike | None) -> Path:
    """``model`` if given; else ``artifacts/model.onnx`` if it exists; else the bundled model."""
    if model is not None:
        path = Path(model)
        if not path.exists():
            raise ModelError(f"{path}: no such model file")
        return path
    for candidate in (DEFAULT_MODEL, BUNDLED_MODEL):
        if candidate.exists():
            return candidate
    raise ModelError(
        f"no model: {DEFAULT_MODEL} does not exist and no bundled model is installed; "
        "train and export one (cifar-pack train && cifar-pack export --onnx) or pass --model"
    )


class Predictor:
    """Classify images with an exported cifar-pack ONNX model on onnxruntime (or OpenVINO).

    Args:
        model: path to an ``.onnx`` file; ``None`` = ``artifacts/model.onnx``, else the bundled model.
        device: "auto" (CUDA or another accelerator when present, else CPU), "cpu", "cuda", ...
        threads: the engine's intra-op threads (default: its choice, all cores).
        max_pixels: refuse image files larger than this (default: ``CIFAR_PACK_MAX_PIXELS``, else 50 MP).
        engine: "onnxruntime" (default) or "openvino" (the ``[openvino]`` extra), same file, same results.
        precision: "f32" (default) or "bf16" (OpenVINO only; an int8 file runs int8 either way).
        settings: all of device, threads, engine and precision as one ``EngineSettings`` (what the
            package passes inside); given, it replaces those four arguments.

    Raises:
        ModelError: missing/corrupt file, or a graph that does not take uint8 [N, 32, 32, 3].
        UsageError: the requested engine, device or precision is not available.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str = DEFAULT_DEVICE,
        threads: int | None = None,
        max_pixels: int | None = None,
        *,
        engine: Engine | str = DEFAULT_ENGINE,
        precision: ComputePrecision | str = DEFAULT_PRECISION,
        settings: EngineSettings | None = None,
    ):
        self.path = resolve_model(model)
        # Read once: every decode of this predictor uses the same cap.
        self.max_pixels = img_mod.resolve_max_pixels(max_pixels)
        self.settings = settings or EngineSettings.of(engine, precision, device, threads)
        self.backend = open_backend(self.path, self.settings)
        self.input_name, self.num_classes = _check_contract(self.backend.inputs, self.backend.outputs, self.path)
        self.metadata = read_metadata(self.backend.metadata, self.path)
        names = self.metadata.get("class_names")
        if names is None:
            log.warning("%s: no class names in metadata or sidecar JSON; labels are class indices", self.path)
            names = [str(i) for i in range(self.num_classes)]
        elif len(names) != self.num_classes:
            log.warning(
                "%s: metadata lists %d class names but the model outputs %d classes; labels are class indices",
                self.path,
                len(names),
                self.num_classes,
            )
            names = [str(i) for i in range(self.num_classes)]
        self.class_names: list[str] = [str(n) for n in names]

    @property
    def device(self) -> str:
        """The device the engine actually runs on, e.g. "cpu" or "cuda"."""
        return self.backend.device

    def runs_on(self) -> str:
        """ "cpu (onnxruntime, f32)", "cpu (onnxruntime, int8 + f32)": where and how this model runs, for
        the line commands print at start (an int8 file's quantized layers run int8, the rest float)."""
        precision = self.backend.precision
        if "quantization" in self.metadata:
            precision = f"int8 + {precision}"
        return f"{self.device} ({self.settings.engine}, {precision})"

    def engine_info(self) -> dict:
        """What runs this model: engine, version, device, precision, kernels (``info``, ``--json``)."""
        return self.backend.describe()

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, 32, 32, 3) RGB -> float32 (N, C) probabilities."""
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.dtype != np.uint8 or batch.shape[1:] != INPUT_SHAPE:
            raise InputError(f"predict_proba expects uint8 (N, 32, 32, 3), got {batch.dtype} {batch.shape}")
        probs = self.backend.run(np.ascontiguousarray(batch))
        if probs.ndim != 2 or probs.shape != (len(batch), self.num_classes):
            raise ModelError(
                f"{self.path}: the graph returned shape {list(probs.shape)}, but declares [N, {self.num_classes}]"
            )
        return probs

    def predict(
        self, inputs: ImageInput | Iterable[ImageInput], top_k: int = 1, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[Prediction]:
        """Classify paths, PIL images or numpy arrays (one HWC image, a list, or an NHWC batch).

        Returns one dict per image: ``{"label", "index", "probability", "top_k": [{"label", "index",
        "probability"}, ...]}``. Raises ``InputError`` naming the first input that cannot be read.
        """
        arrays = [self._to_array(item, i) for i, item in enumerate(_as_items(inputs))]
        if not arrays:
            return []
        probs = run_batched(self.predict_proba, np.stack(arrays), batch_size)
        return [self.describe(row, top_k) for row in probs]

    def predict_files(
        self,
        paths: Iterable[str | os.PathLike],
        top_k: int = 1,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_batch: Callable[[int], None] | None = None,
        decoders: int = 1,
    ) -> Iterator[FileResult]:
        """Yield ``{"path", ...prediction}`` or ``{"path", "error"}`` for each file, in order, lazily.

        ``paths`` may be any iterable (a generator over ten million files): it is read one batch
        ahead, so memory holds two batches whatever the count. Decoding runs in a background
        thread, one batch ahead of inference (onnxruntime releases the GIL), so decoding and the
        model overlap. Bad files never stop the others.
        """
        chunks = _chunks(iter(paths), batch_size)
        # One decoding thread: onnxruntime already uses every core, and more decoders only fight
        # over the GIL (10,000 JPEGs: 4.0 s with 1 or 2 threads, 4.8 s with 4; benchmarks/README.md).
        with ThreadPoolExecutor(decoders) as pool:
            decode = self._decode_or_error
            chunk = next(chunks, None)
            pending = [pool.submit(decode, p) for p in chunk or []]
            while chunk is not None:
                decoded = [f.result() for f in pending]
                following = next(chunks, None)  # queued before this chunk runs through the model
                pending = [pool.submit(decode, p) for p in following or []]
                good = [a for a in decoded if isinstance(a, np.ndarray)]
                rows = iter(self.predict_proba(np.stack(good)) if good else [])
                for path, arr in zip(chunk, decoded):
                    if isinstance(arr, np.ndarray):
                        p = self.describe(next(rows), top_k)
                        result: FileResult = {"path": str(path), "label": p["label"], "index": p["index"]}
                        yield result | {"probability": p["probability"], "top_k": p["top_k"]}
                    else:
                        yield {"path": str(path), "error": arr}
                if on_batch:
                    on_batch(len(chunk))
                chunk = following

    def describe(self, probs: np.ndarray, top_k: int = 1) -> Prediction:
        """(C,) probabilities -> ``{"label", "index", "probability", "top_k": [...]}``, best first."""
        order = np.argsort(-probs, kind="stable")[: max(1, min(top_k, len(probs)))]
        top: list[Ranked] = [
            {"label": self.class_names[i], "index": int(i), "probability": float(probs[i])} for i in order
        ]
        return {"label": top[0]["label"], "index": top[0]["index"], "probability": top[0]["probability"], "top_k": top}

    def _decode_or_error(self, path: str | os.PathLike) -> np.ndarray | str:
        """(32, 32, 3) uint8, or the one-line error message naming the file."""
        try:
            return img_mod.load_image(path, self.max_pixels)
        except CifarPackError as exc:
            return str(exc)
        except MemoryError:
            return f"{path}: out of memory while decoding"

    def _to_array(self, item: object, position: int) -> np.ndarray:
        from PIL import Image

        if isinstance(item, (str, os.PathLike)):
            return img_mod.load_image(item, self.max_pixels)
        if isinstance(item, Image.Image):
            return img_mod.to_model_input(item)
        if isinstance(item, np.ndarray):
            return img_mod.array_to_model_input(item, name=f"input {position}")
        raise InputError(f"input {position}: expected a path, PIL image or numpy array, got {type(item).__name__}")


def _chunks(items: Iterator[str | os.PathLike], size: int) -> Iterator[list[str | os.PathLike]]:
    """Lists of up to ``size`` items, read from ``items`` only as each list is asked for."""
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _as_items(inputs: ImageInput | Iterable[ImageInput]) -> list[object]:
    if isinstance(inputs, np.ndarray):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    if isinstance(inputs, (str, os.PathLike)) or not isinstance(inputs, Iterable):
        return [inputs]
    return list(inputs)


def _check_contract(inputs: list[TensorSpec], outputs: list[TensorSpec], path: Path) -> tuple[str, int]:
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelError(f"{path}: expected one input, found {len(inputs)}")
    inp, out = inputs[0], outputs[0]
    if inp.type != "tensor(uint8)" or list(inp.shape[1:]) != list(INPUT_SHAPE):
        raise ModelError(
            f"{path}: input '{inp.name}' is {inp.type} {inp.shape}; cifar-pack models take uint8 [N, 32, 32, 3] "
            "(export with cifar-pack export --onnx)"
        )
    if isinstance(inp.shape[0], int):  # a name ("N") or None is a dynamic axis; a number is fixed
        raise ModelError(
            f"{path}: input '{inp.name}' has a fixed batch size of {inp.shape[0]} ({inp.shape}); cifar-pack batches "
            "images, so it needs a dynamic first axis, [N, 32, 32, 3], as cifar-pack export writes it"
        )
    if len(out.shape) != 2 or not isinstance(out.shape[1], int) or out.shape[1] < 2:
        raise ModelError(f"{path}: output '{out.name}' has shape {out.shape}, expected [N, num_classes]")
    return inp.name, int(out.shape[1])


def describe_model(model: str | os.PathLike | None = None, settings: EngineSettings | None = None) -> dict:
    """``{"path", "inputs", "outputs", "engine", "advice", "metadata"}`` for ``cifar-pack info`` (on the
    CPU); ``advice``: which engine and file paid on this CPU kind (``sysinfo.engine_advice``)."""
    settings = replace(settings or EngineSettings(), device="cpu")
    predictor = Predictor(model, settings=settings)
    backend = predictor.backend

    def io(values: list[TensorSpec]) -> list[dict]:
        return [
            {"name": v.name, "type": v.type, "shape": [d if isinstance(d, int) else str(d) for d in v.shape]}
            for v in values
        ]

    predictor.predict_proba(np.zeros((1, *INPUT_SHAPE), np.uint8))  # engines pick their kernels on the first call
    return {
        "path": str(predictor.path),
        "inputs": io(backend.inputs),
        "outputs": io(backend.outputs),
        "engine": predictor.engine_info(),
        "advice": engine_advice(cpu_info()),
        "metadata": predictor.metadata,
    }
