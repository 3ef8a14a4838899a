"""The other runtimes that load an exported .onnx, each from its own PyPI package: (path, uint8 batch)
-> probabilities. Imported lazily, so a test that uses none pays for none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx


def run_onnxruntime(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]


def run_openvino(path: Path, x: np.ndarray) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(x)[0]


def run_opencv(path: Path, x: np.ndarray) -> np.ndarray:
    import cv2

    net = cv2.dnn.readNetFromONNX(str(path))  # OpenCV 5's default engine
    net.setInput(x)
    return net.forward()


def run_tract(path: Path, x: np.ndarray) -> np.ndarray:
    import tract

    return tract.onnx().load(str(path)).into_model().into_runnable().run([x])[0].to_numpy()


RUNTIMES = {"OpenVINO": run_openvino, "OpenCV DNN": run_opencv, "tract": run_tract}


def optimized_ops(model: onnx.ModelProto, tmp_path: Path) -> list[str]:
    """The op types onnxruntime runs after its own graph optimisations (levels 1 and 2)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
