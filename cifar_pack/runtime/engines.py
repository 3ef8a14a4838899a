"""The engine under ``Predictor``: onnxruntime (the default), or OpenVINO reading the same .onnx.

Both sit behind one small interface, ``Backend``: the graph's inputs and outputs, its metadata,
``run`` (uint8 (N, 32, 32, 3) -> float32 (N, C)), and ``describe`` (what ran: engine, device,
precision, and for OpenVINO the kernels it chose per layer type). Everything above it (decoding,
results, errors, the server) is the same whichever engine runs.

OpenVINO's precision is explicit: it computes float32 unless ``precision="bf16"`` is asked for
(its own default on a CPU with AVX-512 BF16 or AMX is bf16, which moves probabilities by ~1e-3);
an int8 file's quantized layers run in int8 on both engines. Never imports TensorFlow.
"""

from __future__ import annotations

import os
import queue
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from .config import DEFAULT_DEVICE, DEFAULT_ENGINE, DEFAULT_PRECISION, ComputePrecision, Engine
from .errors import ModelError, UsageError
from .providers import SPINNING_KEY, device_name, import_onnxruntime, not_onnx_message, open_session
from .sysinfo import cpu_info, int8_kernel

OPENVINO_EXTRA = "pip install 'cifar-pack[openvino]'"
# OpenVINO element types -> ONNX's spelling, which the contract check and `info` use.
_OV_TYPES = {"u8": "tensor(uint8)", "f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)"}
# The layers whose kernels `describe` reports: where the time goes (the convolutions) and the softmax.
_REPORTED_LAYERS = ("Convolution", "FullyConnected", "MatMul", "Softmax")


@dataclass(frozen=True)
class EngineSettings:
    """How a model is run, one value built once and passed whole: engine, device ("auto", "cpu",
    "cuda", ...), intra-op threads (None: the engine's choice, all cores), float precision, and
    whether onnxruntime's idle threads spin (None: onnxruntime's default, they do).

    ``spinning``: after each run onnxruntime's pool threads busy-wait for the next one. Alone on
    the machine that saves a wake-up; beside a decoding thread, an event loop or another task on
    the same cores it takes the core they need (``workload_settings`` picks per situation, from
    benchmarks/two_cores.py's figures). OpenVINO has no such switch (its threads yield).

    Build it with ``EngineSettings.of(...)`` from user input: it checks the choices and says which
    option is wrong.
    """

    engine: Engine = DEFAULT_ENGINE
    device: str = DEFAULT_DEVICE
    threads: int | None = None
    precision: ComputePrecision = DEFAULT_PRECISION
    spinning: bool | None = None

    @classmethod
    def of(
        cls,
        engine: Engine | str = DEFAULT_ENGINE,
        precision: ComputePrecision | str = DEFAULT_PRECISION,
        device: str = DEFAULT_DEVICE,
        threads: int | None = None,
        spinning: bool | None = None,
    ) -> EngineSettings:
        """Settings from option values (strings as users type them).

        Raises:
            UsageError: an engine or precision that is not one of the choices, or threads < 1.
        """
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be at least 1, got {threads}")
        chosen = _choice(Engine, engine, "--engine"), _choice(ComputePrecision, precision, "--precision")
        return cls(chosen[0], device, threads, chosen[1], spinning)


def ray_worker_cpus() -> int | None:
    """The CPUs Ray assigned to this worker (an actor's or a replica's ``num_cpus``), or None outside
    a Ray worker: the engine threads the cluster adapters default to."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, round(cpus)) if cpus else None


def sharing_cores(settings: EngineSettings) -> EngineSettings:
    """``settings`` for an engine that shares its cores with other work, with spinning off unless
    asked for: predict's decoding thread, the server's event loop and decode pool, a Ray actor's
    or Spark task's reading and decoding. Measured on 2 cores (benchmarks/two_cores.py,
    benchmarks/README.md "Two shared cores"): the same model-only rate, a folder of JPEGs end to end
    4 % faster, and idle cores left to the event loop and other tasks.
    """
    return settings if settings.spinning is not None else replace(settings, spinning=False)


def per_instance(settings: EngineSettings, instances: int) -> EngineSettings:
    """``settings`` for one of ``instances`` engine calls that run at once (the server's
    ``--instances``): unless threads were given, the cores are divided between them, so two calls
    on two cores each get one thread instead of both queueing for the same two."""
    if settings.threads is not None or instances <= 1:
        return settings
    return replace(settings, threads=max(1, (os.cpu_count() or 1) // instances))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    type: str  # ONNX's spelling: "tensor(uint8)"
    shape: list[Any] = field(default_factory=list)  # ints, or a name ("N") for a dynamic axis


class Backend(Protocol):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: Mapping[str, str]  # the file's metadata_props
    device: str  # where it runs: "cpu", "cuda", ...
    precision: str  # the float arithmetic it computes: "f32" or "bf16"

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict: ...


def open_backend(path: Path, settings: EngineSettings) -> Backend:
    """The engine of ``settings`` (a ``BACKENDS`` entry) with ``path`` loaded.

    Raises:
        ModelError: the file does not load. UsageError: engine/device/precision not available.
    """
    return BACKENDS[Engine(settings.engine)](path, settings)


class OnnxruntimeBackend:
    def __init__(self, path: Path, settings: EngineSettings):
        if settings.precision != ComputePrecision.f32:
            raise UsageError(
                f"--precision {settings.precision}: onnxruntime computes float32 (int8 with an int8 file); "
                "bf16 needs --engine openvino"
            )
        self.session = open_session(path, settings.device, settings.threads, settings.spinning)
        self.provider: str = self.session.get_providers()[0]
        self.device = device_name(self.provider)
        self.inputs = [TensorSpec(v.name, v.type, list(v.shape)) for v in self.session.get_inputs()]
        self.outputs = [TensorSpec(v.name, v.type, list(v.shape)) for v in self.session.get_outputs()]
        self.metadata: Mapping[str, str] = self.session.get_modelmeta().custom_metadata_map
        self.precision = str(ComputePrecision.f32)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.inputs[0].name: batch})[0]

    def _spinning(self) -> bool:
        """Whether the session's idle threads spin: its options read back (absent: onnxruntime's default, yes)."""
        try:
            return self.session.get_session_options().get_session_config_entry(SPINNING_KEY) != "0"
        except RuntimeError:  # onnxruntime raises for a key never set
            return True

    def describe(self) -> dict:
        """Engine, version, device, provider, precision, spinning; for an int8 (QDQ) file, this CPU's int8 kernel
        family (OpenVINO lists its kernels per layer instead)."""
        info = {
            "engine": Engine.onnxruntime.value,
            "version": import_onnxruntime().__version__,
            "device": self.device,
            "provider": self.provider,
            "precision": self.precision,
            "spinning": self._spinning(),
        }
        if "quantization" in self.metadata:
            machine = cpu_info()
            info["int8"] = f"QDQ file; this CPU's int8 kernel: {int8_kernel(machine['flags'], machine['machine'])}"
        return info


class OpenVINOBackend:
    """OpenVINO's CPU plugin on the .onnx file itself (its ONNX frontend; compiling takes ~50 ms).

    One compiled model; one infer request per concurrent caller (a request is not thread-safe),
    kept in a pool, so the server's threads run in parallel as they do on onnxruntime.
    """

    def __init__(self, path: Path, settings: EngineSettings):
        ov = _import_openvino()
        if settings.device.lower() not in ("auto", "cpu"):
            raise UsageError(f"--device {settings.device}: --engine openvino runs on the CPU here (use auto or cpu)")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line text
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(not_onnx_message(path, first)) from None
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": str(settings.precision)}
        if settings.threads:
            config["INFERENCE_NUM_THREADS"] = settings.threads
        self.compiled = core.compile_model(model, "CPU", config)
        self.device = "cpu"
        # What it will compute, which may differ from the hint: f32 where the CPU has no bf16.
        self.precision = _precision_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.version = ov.get_version()
        self.inputs = [_ov_spec(p) for p in model.inputs]
        self.outputs = [_ov_spec(p) for p in model.outputs]
        # The ONNX frontend keeps the file's metadata_props in the model's rt_info, under "framework".
        rt_info = model.get_rt_info()
        framework = rt_info["framework"] if "framework" in rt_info else {}
        self.metadata: Mapping[str, str] = {
            str(k): v.astype(str) if hasattr(v, "astype") else str(v) for k, v in dict(framework).items()
        }
        self._idle: queue.SimpleQueue = queue.SimpleQueue()

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            request.infer({0: batch})
            # The output tensor is the request's own buffer, overwritten by its next call: copy.
            return np.array(request.get_output_tensor(0).data, copy=True)
        finally:
            self._idle.put(request)

    def describe(self) -> dict:
        """Engine, precision and, per reported layer type, the kernels OpenVINO compiled (e.g.
        ``"Convolution": "brgconv_avx512_I8 (u8) x4"``). Kernels are chosen on the first call."""
        counts: Counter[tuple[str, str]] = Counter()  # (layer type, "kernel (precision)") -> layers
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            layer = info["layerType"].astype(str) if "layerType" in info else ""
            if layer in _REPORTED_LAYERS:
                counts[(layer, f"{info['primitiveType'].astype(str)} ({info['runtimePrecision'].astype(str)})")] += 1
        kernels: dict[str, list[str]] = {}
        for (layer, kernel), n in counts.items():
            kernels.setdefault(layer, []).append(f"{kernel} x{n}")
        return {
            "engine": Engine.openvino.value,
            "version": self.version,
            "device": self.device,
            "precision": self.precision,
            "kernels": {layer: ", ".join(found) for layer, found in kernels.items()},
        }


def _import_openvino() -> ModuleType:
    try:
        import openvino
    except ImportError:
        raise UsageError(f"--engine openvino: OpenVINO is not installed; {OPENVINO_EXTRA}") from None
    return openvino


def _ov_spec(port: Any) -> TensorSpec:
    shape = [d.get_length() if d.is_static else "N" for d in port.get_partial_shape()]
    element = port.get_element_type().get_type_name()
    return TensorSpec(port.get_any_name(), _OV_TYPES.get(element, f"tensor({element})"), shape)


def _precision_name(element_type: Any) -> str:
    """OpenVINO's ``<Type: 'float32'>`` / ``bf16`` -> "f32" / "bf16" (the ``--precision`` spelling)."""
    name = element_type.get_type_name() if hasattr(element_type, "get_type_name") else str(element_type)
    return {"float32": "f32", "bfloat16": "bf16"}.get(name, name)


# Every engine, by its --engine name: a new engine is one Backend class and one entry here (and
# its name in config.Engine, which the command line lists).
BACKENDS: dict[Engine, Callable[[Path, EngineSettings], Backend]] = {
    Engine.onnxruntime: OnnxruntimeBackend,
    Engine.openvino: OpenVINOBackend,
}


def _choice(enum: type[Engine] | type[ComputePrecision], value: str, option: str) -> Any:
    """``enum(value)``, or a ``UsageError`` naming ``option`` and its choices."""
    try:
        return enum(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: use one of {', '.join(m.value for m in enum)}") from None
