"""onnxruntime itself: importing it, ``--device`` names -> execution providers, opening a session.

The one place that knows onnxruntime's providers; ``Predictor`` and the server take a session
from here. Never imports TensorFlow.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # onnxruntime ships no type information; the name documents what is returned
    from onnxruntime import InferenceSession

from .errors import BrokenInstallError, ModelError, UsageError

log = logging.getLogger(__name__)

# --device names -> onnxruntime execution providers, in the order "auto" prefers them.
DEVICE_PROVIDERS = {
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
CPU = "CPUExecutionProvider"


def import_onnxruntime() -> ModuleType:
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


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Providers for ``device``: "auto" takes the first accelerated one present, else CPU.

    A named device is strict: if its provider is not available this raises ``UsageError``
    instead of silently falling back to the CPU.
    """
    # Short names are case-insensitive ("CUDA"); provider names keep their case ("CPUExecutionProvider").
    device = device if device in available or device in DEVICE_PROVIDERS.values() else device.lower()
    if device == "auto":
        for name in DEVICE_PROVIDERS.values():
            if name in available and name != CPU:
                return [name, CPU]
        return [CPU]
    provider = DEVICE_PROVIDERS.get(device, device)
    if provider not in DEVICE_PROVIDERS.values() and provider not in available:
        raise UsageError(f"--device {device!r}: unknown; use auto, {', '.join(DEVICE_PROVIDERS)} or a provider name")
    if provider not in available:
        hint = " (install the GPU build: see docs/usage.md#gpu)" if device == "cuda" else ""
        raise UsageError(
            f"--device {device}: {provider} is not available in this onnxruntime "
            f"(available: {', '.join(available)}){hint}"
        )
    return [provider] if provider == CPU else [provider, CPU]


def device_name(provider: str) -> str:
    """The ``--device`` name of a provider ("cuda" for CUDAExecutionProvider), else the provider."""
    return next((name for name, p in DEVICE_PROVIDERS.items() if p == provider), provider)


# onnxruntime's session option for its intra-op pool's idle threads (absent or "1": they spin).
SPINNING_KEY = "session.intra_op.allow_spinning"


def open_session(path: Path, device: str, threads: int | None, spinning: bool | None = None) -> InferenceSession:
    """An ``InferenceSession`` for ``path`` on ``device``: ``ModelError`` if the file does not load.

    Raises:
        ModelError: not a loadable ONNX file. UsageError: a named device that failed to start.
    """
    ort = import_onnxruntime()
    providers = choose_providers(device, ort.get_available_providers())
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: graph-level warnings are for model authors, not users
    if threads:
        options.intra_op_num_threads = threads
    if spinning is not None:
        options.add_session_config_entry(SPINNING_KEY, "1" if spinning else "0")
    # onnxruntime-gpu lists CUDAExecutionProvider even on a machine without a GPU or CUDA
    # libraries; creating the session then logs coloured multi-line errors and falls back to
    # the CPU. Silence onnxruntime's process-wide logger meanwhile (4 = fatal only; 2 is its
    # default) and say what happened in one plain line instead.
    accelerated = providers[0] != CPU
    if accelerated:
        ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(not_onnx_message(path, first)) from None
    finally:
        if accelerated:
            ort.set_default_logger_severity(2)
    if session.get_providers()[0] != providers[0]:
        why = _provider_failure(providers[0], ort)
        if device != "auto":
            raise UsageError(f"--device {device}: {providers[0]} failed to initialise ({why})")
        log.warning("--device auto: %s unusable here (%s); running on the CPU", providers[0], why)
    return session


# File signatures of what people pass as --model by mistake, with what to do instead.
_NOT_ONNX = (
    (b"PK\x03\x04", "a Keras model (.keras); export it first: cifar-pack export --onnx --model {path}"),
    (b"\x89HDF\r\n\x1a\n", "a Keras HDF5 model (.h5); export it first: cifar-pack export --onnx --model {path}"),
    (b"\x89PNG", "an image, not a model; images are the inputs: cifar-pack predict {path}"),
    (b"\xff\xd8\xff", "an image, not a model; images are the inputs: cifar-pack predict {path}"),
)


def not_onnx_message(path: Path, cause: str) -> str:
    """Why ``path`` is not a loadable model, in words a user can act on (``cause``: onnxruntime's first line)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        head = b""
    for magic, what in _NOT_ONNX:
        if head.startswith(magic):
            return f"{path}: {what.format(path=path)}"
    return (
        f"{path}: not a loadable ONNX model ({cause}); cifar-pack runs the .onnx files "
        "`cifar-pack export --onnx` writes"
    )


def _provider_failure(provider: str, ort: ModuleType) -> str:
    """Why an installed execution provider did not start, in a few words (no onnxruntime log)."""
    import ctypes

    name = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}.get(provider)
    capi = Path(ort.__file__).parent / "capi" if ort.__file__ else None
    library = capi / f"libonnxruntime_providers_{name}.so" if capi and name else None
    if library is not None and library.exists():
        try:
            ctypes.CDLL(str(library))
        except OSError as exc:  # the dynamic loader names the missing library, e.g. libcublasLt.so.13
            return str(exc).removeprefix(f"{library}: ").strip()[:160]
        return "libraries load, but no usable device: check the driver and CUDA_VISIBLE_DEVICES"
    return "see onnxruntime's log with --debug"
