"""Runtime: ``Predictor`` on onnxruntime alone. Never imports tensorflow, keras or tf2onnx.

>>> from cifar_pack import Predictor
>>> p = Predictor()                                  # artifacts/model.onnx, else the bundled model
>>> p.predict("cat.png", top_k=3)[0]["label"]
'cat'
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import images as img_mod
from .config import INPUT_SHAPE
from .errors import BrokenInstallError, CifarPackError, InputError, ModelError, UsageError

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path("artifacts/model.onnx")
BUNDLED_MODEL = Path(__file__).parent / "pretrained" / "cifar10.onnx"

# --device names -> onnxruntime execution providers, in the order "auto" prefers them.
DEVICE_PROVIDERS = {
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


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


def import_onnxruntime():
    """``import onnxruntime``, or one line on how to repair a half-removed install.

    onnxruntime and onnxruntime-gpu install into the same ``onnxruntime/`` folder; uninstalling
    one of the two after installing both deletes the shared Python files and leaves a namespace
    package with only ``capi/`` that has no ``get_available_providers`` (onnxruntime's docs:
    install exactly one of them).
    """
    import onnxruntime as ort

    if not hasattr(ort, "get_available_providers"):
        where = next(iter(getattr(ort, "__path__", [])), "?")
        raise BrokenInstallError(
            f"onnxruntime at {where} is incomplete (its Python files were removed, typically by "
            "`pip uninstall onnxruntime` beside onnxruntime-gpu); repair it with "
            "`pip install --force-reinstall --no-deps onnxruntime-gpu` (or `onnxruntime` for the CPU build)"
        )
    return ort


def _provider_failure(provider: str, ort) -> str:
    """Why an installed execution provider did not start, in a few words (no onnxruntime log)."""
    import ctypes

    name = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}.get(provider)
    library = Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{name}.so" if name else None
    if library is not None and library.exists():
        try:
            ctypes.CDLL(str(library))
        except OSError as exc:  # the dynamic loader names the missing library, e.g. libcublasLt.so.13
            return str(exc).removeprefix(f"{library}: ").strip()[:160]
        return "libraries load, but no usable device: check the driver and CUDA_VISIBLE_DEVICES"
    return "see onnxruntime's log with --debug"


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Providers for ``device``: "auto" takes the first accelerated one present, else CPU.

    A named device is strict: if its provider is not available this raises ``UsageError``
    instead of silently falling back to the CPU.
    """
    # Short names are case-insensitive ("CUDA"); provider names keep their case ("CPUExecutionProvider").
    device = device if device in available or device in DEVICE_PROVIDERS.values() else device.lower()
    if device == "auto":
        for name in DEVICE_PROVIDERS.values():
            if name in available and name != "CPUExecutionProvider":
                return [name, "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
    provider = DEVICE_PROVIDERS.get(device, device)
    if provider not in DEVICE_PROVIDERS.values() and provider not in available:
        raise UsageError(f"--device {device!r}: unknown; use auto, {', '.join(DEVICE_PROVIDERS)} or a provider name")
    if provider not in available:
        hint = " (install the GPU build: see docs/usage.md#gpu)" if device == "cuda" else ""
        raise UsageError(
            f"--device {device}: {provider} is not available in this onnxruntime "
            f"(available: {', '.join(available)}){hint}"
        )
    return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]


class Predictor:
    """Classify images with an exported cifar-pack ONNX model on onnxruntime.

    Args:
        model: path to an ``.onnx`` file; ``None`` = ``artifacts/model.onnx``, else the bundled model.
        device: "auto" (CUDA or another accelerator when present, else CPU), "cpu", "cuda", ...
        threads: onnxruntime intra-op threads (default: onnxruntime's choice, all cores).

    Raises:
        ModelError: missing/corrupt file, or a graph that does not take uint8 [N, 32, 32, 3].
        UsageError: the requested device is not available.
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str = "auto", threads: int | None = None):
        ort = import_onnxruntime()

        self.path = resolve_model(model)
        providers = choose_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: graph-level warnings are for model authors, not users
        if threads:
            options.intra_op_num_threads = threads
        # onnxruntime-gpu lists CUDAExecutionProvider even on a machine without a GPU or CUDA
        # libraries; creating the session then logs coloured multi-line errors and falls back to
        # the CPU. Silence onnxruntime's process-wide logger meanwhile (4 = fatal only; 2 is its
        # default) and say what happened in one plain line instead.
        accelerated = providers[0] != "CPUExecutionProvider"
        if accelerated:
            ort.set_default_logger_severity(4)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a loadable ONNX model ({first})") from None
        finally:
            if accelerated:
                ort.set_default_logger_severity(2)
        if self.session.get_providers()[0] != providers[0]:
            why = _provider_failure(providers[0], ort)
            if device != "auto":
                raise UsageError(f"--device {device}: {providers[0]} failed to initialise ({why})")
            log.warning("--device auto: %s unusable here (%s); running on the CPU", providers[0], why)
        self.provider = self.session.get_providers()[0]
        self.input_name, self.num_classes = _check_contract(self.session, self.path)
        self.metadata = read_metadata(self.session, self.path)
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
        """The device onnxruntime actually runs on, e.g. "cpu" or "cuda"."""
        for name, provider in DEVICE_PROVIDERS.items():
            if provider == self.provider:
                return name
        return self.provider

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, 32, 32, 3) RGB -> float32 (N, C) probabilities."""
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.dtype != np.uint8 or batch.shape[1:] != INPUT_SHAPE:
            raise InputError(f"predict_proba expects uint8 (N, 32, 32, 3), got {batch.dtype} {batch.shape}")
        probs = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
        if probs.ndim != 2 or probs.shape != (len(batch), self.num_classes):
            raise ModelError(
                f"{self.path}: the graph returned shape {list(probs.shape)}, but declares [N, {self.num_classes}]"
            )
        return probs

    def predict(self, inputs, top_k: int = 1, batch_size: int = 256) -> list[dict]:
        """Classify paths, PIL images or numpy arrays (one HWC image, a list, or an NHWC batch).

        Returns one dict per image: ``{"label", "index", "probability", "top_k": [{"label", "index",
        "probability"}, ...]}``. Raises ``InputError`` naming the first input that cannot be read.
        """
        arrays = [self._to_array(item, i) for i, item in enumerate(_as_items(inputs))]
        if not arrays:
            return []
        batch = np.stack(arrays)
        probs = np.concatenate(
            [self.predict_proba(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)]
        )
        return [self.describe(row, top_k) for row in probs]

    def predict_files(
        self,
        paths: list[Path],
        top_k: int = 1,
        batch_size: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[dict]:
        """Yield ``{"path", ...prediction}`` or ``{"path", "error"}`` for each file, in order.

        Decoding runs in a background thread, one batch ahead of inference (onnxruntime releases
        the GIL), so decoding and the model overlap. Bad files never stop the others.
        """
        chunks = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
        # One decoding thread: onnxruntime already uses every core, and more decoders only fight
        # over the GIL (10,000 JPEGs: 4.0 s with 1 or 2 threads, 4.8 s with 4; benchmarks/README.md).
        with ThreadPoolExecutor(1) as pool:
            # Futures for chunk k+1 are queued before chunk k is run through the model.
            pending = [pool.submit(_decode_or_error, p) for p in chunks[0]] if chunks else []
            for index, chunk in enumerate(chunks):
                decoded = [f.result() for f in pending]
                if index + 1 < len(chunks):
                    pending = [pool.submit(_decode_or_error, p) for p in chunks[index + 1]]
                good = [a for a in decoded if isinstance(a, np.ndarray)]
                rows = iter(self.predict_proba(np.stack(good)) if good else [])
                for path, arr in zip(chunk, decoded):
                    if isinstance(arr, np.ndarray):
                        yield {"path": str(path)} | self.describe(next(rows), top_k)
                    else:
                        yield {"path": str(path), "error": arr}
                if on_batch:
                    on_batch(len(chunk))

    def describe(self, probs: np.ndarray, top_k: int = 1) -> dict:
        order = np.argsort(-probs, kind="stable")[: max(1, min(top_k, len(probs)))]
        top = [{"label": self.class_names[i], "index": int(i), "probability": float(probs[i])} for i in order]
        return {**top[0], "top_k": top}

    def _to_array(self, item, position: int) -> np.ndarray:
        from PIL import Image

        if isinstance(item, (str, os.PathLike)):
            return img_mod.load_image(item)
        if isinstance(item, Image.Image):
            return img_mod.to_model_input(item)
        if isinstance(item, np.ndarray):
            return img_mod.array_to_model_input(item, name=f"input {position}")
        raise InputError(f"input {position}: expected a path, PIL image or numpy array, got {type(item).__name__}")


def _as_items(inputs) -> list:
    if isinstance(inputs, np.ndarray):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    if isinstance(inputs, (str, os.PathLike)) or not isinstance(inputs, Iterable):
        return [inputs]
    return list(inputs)


def _decode_or_error(path: Path) -> np.ndarray | str:
    """(32, 32, 3) uint8, or the one-line error message naming the file."""
    try:
        return img_mod.load_image(path)
    except CifarPackError as exc:
        return str(exc)
    except MemoryError:
        return f"{path}: out of memory while decoding"


def _check_contract(session, path: Path) -> tuple[str, int]:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise ModelError(f"{path}: expected one input, found {len(inputs)}")
    inp, out = inputs[0], outputs[0]
    if inp.type != "tensor(uint8)" or list(inp.shape[1:]) != list(INPUT_SHAPE):
        raise ModelError(
            f"{path}: input '{inp.name}' is {inp.type} {inp.shape}; cifar-pack models take uint8 [N, 32, 32, 3] "
            "(export with cifar-pack export --onnx)"
        )
    if len(out.shape) != 2 or not isinstance(out.shape[1], int) or out.shape[1] < 2:
        raise ModelError(f"{path}: output '{out.name}' has shape {out.shape}, expected [N, num_classes]")
    return inp.name, int(out.shape[1])


MAX_METADATA_CHARS = 1_000_000  # per metadata value or sidecar: labels and provenance are a few KB


def read_metadata(session, path: Path) -> dict:
    """JSON-decoded ``metadata_props``; falls back to the sidecar ``<model>.json``.

    Metadata is the model author's text, so it is bounded and checked: values over 1 MB, JSON
    nested too deeply to decode, and a sidecar that is not a JSON object are dropped with a
    warning; ``training`` must be an object (else dropped), ``class_names`` a list of strings.
    """
    raw = session.get_modelmeta().custom_metadata_map
    meta = {}
    for key, value in raw.items():
        if len(value) > MAX_METADATA_CHARS:
            log.warning("%s: metadata '%s' is %d characters; ignored", path, key[:40], len(value))
            continue
        meta[key] = _json_or_text(value, path, key)
    if "class_names" not in meta:
        sidecar = Path(f"{path}.json")
        if sidecar.is_file() and sidecar.stat().st_size <= MAX_METADATA_CHARS:
            side = _json_or_text(sidecar.read_text(errors="replace"), sidecar, "sidecar")
            if not isinstance(side, dict):
                log.warning("%s: sidecar is not a JSON object; ignored", sidecar)
            elif not _sidecar_matches(path, side):
                log.warning("%s: sidecar describes another model file (sha256 differs); ignored", sidecar)
            else:
                meta = side | meta
    if "training" in meta and not isinstance(meta["training"], dict):
        log.warning("%s: metadata 'training' is not a JSON object; ignored", path)
        del meta["training"]
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        log.warning("%s: metadata 'class_names' is not a list of strings; ignored", path)
        del meta["class_names"]
    return meta


def _sidecar_matches(path, side: dict) -> bool:
    from .onnx_file import sidecar_matches  # hashlib & co. only when a sidecar is actually read

    return sidecar_matches(path, side)


def _json_or_text(value: str, path, key: str):
    try:
        return json.loads(value)
    except ValueError:
        return value
    except RecursionError:  # "[[[[...]]]]" 100,000 deep
        log.warning("%s: metadata '%s' is nested too deeply to read; ignored", path, key[:40])
        return None


def describe_model(model: str | os.PathLike | None = None) -> dict:
    """``{"path", "inputs", "outputs", "metadata"}`` for ``cifar-pack info``."""
    predictor = Predictor(model, device="cpu")
    session = predictor.session

    def io(values):
        return [
            {"name": v.name, "type": v.type, "shape": [d if isinstance(d, int) else str(d) for d in v.shape]}
            for v in values
        ]

    return {
        "path": str(predictor.path),
        "inputs": io(session.get_inputs()),
        "outputs": io(session.get_outputs()),
        "metadata": predictor.metadata,
    }
