"""The Open Inference Protocol (KServe v2) as Triton speaks it over HTTP/REST: parsing and encoding.

Supported: JSON tensors; the binary tensor data extension in both directions (the JSON header's
length in ``Inference-Header-Content-Length``, raw little-endian tensors after it,
``binary_data_size`` on inputs, ``binary_data`` on requested outputs, ``binary_data_output`` on
the request); the classification extension (``"classification": k`` on an output returns BYTES
strings ``"probability:index:label"``). Pure functions on bytes and numpy: no web framework
here; what both transports share is in ``tensors.py``.
"""

from __future__ import annotations

import json

import numpy as np

from ..runtime.config import INPUT_BYTES, INPUT_NAME, INPUT_SHAPE, OUTPUT_NAME
from .errors import InvalidInput
from .tensors import InferRequest, OutputSpec, bytes_tensor, check_shape, classification_strings


def parse_infer(body: bytes, header_length: str | None, num_classes: int, max_images: int) -> InferRequest:
    """Decode an infer request body into images and what the client wants back.

    Raises:
        InvalidInput: malformed JSON, wrong tensor name/shape/datatype/byte count. TooLarge: too many
            images.
    """
    header, binary = _split_body(body, header_length)
    try:
        request = json.loads(header)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the request is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or len(request["inputs"]) != 1:
        raise InvalidInput(f"expected {{'inputs': [one tensor named '{INPUT_NAME}']}}")
    tensor = request["inputs"][0]
    if not isinstance(tensor, dict) or tensor.get("name") != INPUT_NAME:
        raise InvalidInput(f"the input tensor must be named '{INPUT_NAME}'")
    if tensor.get("datatype") != "UINT8":
        raise InvalidInput(f"input '{INPUT_NAME}' must be UINT8, got {str(tensor.get('datatype'))[:20]!r}")
    shape = tensor.get("shape")
    count = check_shape(shape if isinstance(shape, list) else [], max_images)
    params = _parameters(tensor)
    expected = count * INPUT_BYTES
    if "binary_data_size" in params:
        size = params["binary_data_size"]
        if size != expected:
            raise InvalidInput(f"binary_data_size is {size!r}; [{count}, 32, 32, 3] UINT8 needs {expected} bytes")
        if len(binary) != size:
            raise InvalidInput(f"{len(binary)} bytes of binary tensor data follow the header; expected {size}")
        images = np.frombuffer(binary, dtype=np.uint8).reshape(count, *INPUT_SHAPE)
    else:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise InvalidInput(f"input '{INPUT_NAME}' has neither 'data' nor a binary_data_size parameter")
        flat = _integers(data)
        if flat.size != expected:
            raise InvalidInput(f"input '{INPUT_NAME}' has {flat.size} values; [{count}, 32, 32, 3] needs {expected}")
        if flat.min() < 0 or flat.max() > 255:
            raise InvalidInput(f"input '{INPUT_NAME}' values must be in 0..255 (UINT8)")
        images = flat.astype(np.uint8).reshape(count, *INPUT_SHAPE)
    return InferRequest(
        str(request["id"])[:256] if "id" in request else None, images, _output_spec(request, num_classes)
    )


def _integers(data: list) -> np.ndarray:
    """A (nested) JSON list of integers as a flat int64 array; 400 for anything else.

    numpy would take "7", 1.9 and true as 7, 1 and 1; UINT8 means JSON integers, nothing else.
    """
    try:
        values = np.asarray(data, dtype=object).reshape(-1)
    except (ValueError, TypeError):
        raise InvalidInput(f"input '{INPUT_NAME}' data must be a list of integers 0..255") from None
    if not all(type(v) is int for v in values):  # bool is a subclass of int: `type(...) is` refuses it
        raise InvalidInput(f"input '{INPUT_NAME}' data must be integers 0..255 (no strings, floats or booleans)")
    try:
        return values.astype(np.int64)
    except OverflowError:
        raise InvalidInput(f"input '{INPUT_NAME}' values must be in 0..255 (UINT8)") from None


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tensor data) by the binary extension's Inference-Header-Content-Length."""
    if header_length is None:
        return body, b""
    try:
        split = int(header_length)
    except ValueError:
        raise InvalidInput(f"Inference-Header-Content-Length {header_length[:40]!r} is not an integer") from None
    if not 0 < split <= len(body):
        raise InvalidInput(f"Inference-Header-Content-Length {split} does not fit the {len(body)}-byte body")
    return body[:split], body[split:]


def _parameters(entry: dict) -> dict:
    """An entry's ``parameters`` object; {} when absent or not an object."""
    params = entry.get("parameters")
    return params if isinstance(params, dict) else {}


def _output_spec(request: dict, num_classes: int) -> OutputSpec:
    binary = bool(_parameters(request).get("binary_data_output", False))
    outputs = request.get("outputs")
    if outputs is None:
        return OutputSpec(binary, 0)
    if not isinstance(outputs, list) or len(outputs) != 1 or not isinstance(outputs[0], dict):
        raise InvalidInput(f"'outputs' must list the one output, '{OUTPUT_NAME}'")
    if outputs[0].get("name") != OUTPUT_NAME:
        raise InvalidInput(f"unknown output {str(outputs[0].get('name'))[:40]!r}; this model has '{OUTPUT_NAME}'")
    params = _parameters(outputs[0])
    binary = bool(params.get("binary_data", binary))
    k = params.get("classification", 0)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= num_classes:
        raise InvalidInput(f"classification must be an integer in 0..{num_classes}, got {str(k)[:20]!r}")
    return OutputSpec(binary, k)


def encode_infer(
    model_name: str, version: str, request: InferRequest, probs: np.ndarray, labels: list[str]
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers for ``probs`` (N, C) float32."""
    spec = request.output
    output: dict[str, object]
    data: list | None
    if spec.classification:
        strings = classification_strings(probs, spec.classification, labels)
        output = {"name": OUTPUT_NAME, "datatype": "BYTES", "shape": [len(strings), spec.classification]}
        raw = bytes_tensor(strings)
        data = [s for row in strings for s in row]
    else:
        output = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(probs.shape)}
        raw = np.ascontiguousarray(probs, dtype="<f4").tobytes()
        data = None
    response: dict[str, object] = {"model_name": model_name, "model_version": version, "outputs": [output]}
    if request.id is not None:
        response["id"] = request.id
    if spec.binary:
        output["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps(response).encode()
        headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
        return header + raw, headers
    output["data"] = data if data is not None else probs.reshape(-1).tolist()
    return json.dumps(response).encode(), {"Content-Type": "application/json"}
