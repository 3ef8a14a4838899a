"""A model's configuration in Triton's ModelConfig schema: the JSON the config endpoints answer, and
``config.pbtxt`` (protobuf text, checked in the tests against the schema tritonclient ships,
``tritonclient.grpc.model_config_pb2``)."""

from __future__ import annotations

from ...runtime.config import INPUT_SHAPE, OUTPUT_NAME
from ..config import DEFAULT_BATCHING, Batching
from .layout import LABELS_FILE


def triton_config(
    name: str, input_name: str, num_classes: int, batching: Batching = DEFAULT_BATCHING, backend: str = "onnxruntime"
) -> dict:
    """A model's configuration in Triton's ModelConfig schema (its JSON form): what ``config.pbtxt``
    holds and what the server answers to ``GET /v2/models/NAME/config`` and gRPC ModelConfig."""
    return {
        "name": name,
        "platform": f"{backend}_onnx",
        "backend": backend,
        "max_batch_size": batching.max_batch_size,
        "input": [{"name": input_name, "data_type": "TYPE_UINT8", "dims": list(INPUT_SHAPE)}],
        "output": [{"name": OUTPUT_NAME, "data_type": "TYPE_FP32", "dims": [num_classes]}],
        "dynamic_batching": {"max_queue_delay_microseconds": round(batching.max_queue_delay_ms * 1000)},
    }


def config_pbtxt(config: dict) -> str:
    """``triton_config``'s value as protobuf text, with the labels file named on the output."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    config = config | {"output": [config["output"][0] | {"label_filename": LABELS_FILE}]}
    config.pop("platform")  # Triton takes backend or platform; "onnxruntime" alone is its usual form
    message = json_format.ParseDict(config, model_config_pb2.ModelConfig())
    classes = config["output"][0]["dims"][0]
    header = f"# Written by cifar-pack: uint8 [N, 32, 32, 3] RGB images -> float32 [N, {classes}] probabilities.\n"
    return header + text_format.MessageToString(message)
