"""The one writer (and checker) of exported ONNX files and their sidecar JSON. No TensorFlow.

An exported model carries its metadata twice: inside the file (``metadata_props``, JSON values)
and beside it (``<model>.onnx.json``) for runtimes that cannot read ONNX metadata
(onnxruntime-web). The sidecar also names the sha256 of the model it describes, so a reader
can tell a sidecar left over from another export (a kill between the two writes) and ignore it.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import __version__
from .fileio import remove_stale_temps, sha256_file, write_bytes_atomic, write_json_atomic


def sidecar_path(onnx_path: str | Path) -> Path:
    return Path(f"{onnx_path}.json")


def set_metadata(onnx_model, metadata: dict) -> None:
    """Replace ``onnx_model``'s ``metadata_props`` with ``metadata`` (each value JSON-encoded)."""
    del onnx_model.metadata_props[:]
    for key, value in metadata.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx_model.producer_name = "cifar-pack"
    onnx_model.producer_version = __version__
    onnx_model.doc_string = "uint8 [N,32,32,3] RGB images -> float32 [N,C] probabilities; see metadata"


def write_model(path: str | Path, onnx_model, metadata: dict) -> Path:
    """Write ``onnx_model`` with ``metadata`` to ``path``, then its sidecar; both atomically.

    The model first: a kill between the two leaves the new model with an old (or no) sidecar,
    which ``sidecar_matches`` then rejects by sha256.
    """
    path = Path(path)
    remove_stale_temps(path.parent, [path.name, sidecar_path(path).name])
    set_metadata(onnx_model, metadata)
    write_bytes_atomic(path, onnx_model.SerializeToString())
    write_json_atomic(sidecar_path(path), metadata | {"model_sha256": sha256_file(path)})
    return path


def sidecar_matches(onnx_path: str | Path, sidecar: dict) -> bool:
    """Whether ``sidecar`` describes the file at ``onnx_path`` (sidecars without a hash: trusted)."""
    expected = sidecar.get("model_sha256")
    return expected is None or expected == sha256_file(onnx_path)
