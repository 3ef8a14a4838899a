"""The one writer and the one reader of exported ONNX files' metadata and sidecar JSON. No TensorFlow.

An exported model carries its metadata twice: inside the file (``metadata_props``, JSON values)
and beside it (``<model>.onnx.json``) for runtimes that cannot read ONNX metadata
(onnxruntime-web). The sidecar also names the sha256 of the model it describes, so a reader
can tell a sidecar left over from another export (a kill between the two writes) and ignore it.

Writing takes an ``onnx.ModelProto`` (the ``[train]`` extra's onnx package, passed in by the
caller); reading takes the raw ``{key: text}`` map that onnxruntime
(``session.get_modelmeta().custom_metadata_map``) or onnx (``metadata_props``) hands out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the [train] extra's onnx: only its writers and readers of ModelProto use it
    from onnx import ModelProto

from .. import __version__
from .config import DEFAULT_MAX_PIXELS
from .fileio import remove_stale_temps, sha256_file, write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

MAX_METADATA_CHARS = 1_000_000  # per metadata value or sidecar: labels and provenance are a few KB


def sidecar_path(onnx_path: str | Path) -> Path:
    return Path(f"{onnx_path}.json")


def set_metadata(onnx_model: ModelProto, metadata: dict) -> None:
    """Replace ``onnx_model``'s ``metadata_props`` with ``metadata`` (each value JSON-encoded)."""
    del onnx_model.metadata_props[:]
    for key, value in metadata.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx_model.producer_name = "cifar-pack"
    onnx_model.producer_version = __version__
    onnx_model.doc_string = "uint8 [N,32,32,3] RGB images -> float32 [N,C] probabilities; see metadata"


def write_model(path: str | Path, onnx_model: ModelProto, metadata: dict) -> Path:
    """Write ``onnx_model`` with ``metadata`` to ``path``, then its sidecar; both atomically.

    The model first: a kill between the two leaves the new model with an old (or no) sidecar,
    which ``sidecar_matches`` then rejects by sha256.
    """
    path = Path(path)
    remove_stale_temps(path.parent, [path.name, sidecar_path(path).name])
    metadata = with_pixel_cap(metadata)
    set_metadata(onnx_model, metadata)
    write_bytes_atomic(path, onnx_model.SerializeToString())
    write_json_atomic(sidecar_path(path), metadata | {"model_sha256": sha256_file(path)})
    return path


def with_pixel_cap(metadata: dict) -> dict:
    """``metadata`` with ``input.max_pixels``: the pixel cap every embedding example applies from the
    image header before decoding (docs/embedding.md). Python's default, so one number in one place."""
    contract = metadata.get("input")
    if not isinstance(contract, dict) or "max_pixels" in contract:
        return metadata
    return metadata | {"input": contract | {"max_pixels": DEFAULT_MAX_PIXELS}}


def sidecar_matches(onnx_path: str | Path, sidecar: dict) -> bool:
    """Whether ``sidecar`` describes the file at ``onnx_path`` (sidecars without a hash: trusted)."""
    expected = sidecar.get("model_sha256")
    return expected is None or expected == sha256_file(onnx_path)


def read_metadata(raw: Mapping[str, str], path: str | Path) -> dict:
    """JSON-decoded metadata of the model at ``path``; falls back to its sidecar ``<model>.json``.

    Metadata is the model author's text, so it is bounded and checked: values over 1 MB, JSON
    nested too deeply to decode, and a sidecar that is not a JSON object are dropped with a
    warning; ``training`` must be an object (else dropped), ``class_names`` a list of strings.
    """
    meta = {}
    for key, value in raw.items():
        if len(value) > MAX_METADATA_CHARS:
            log.warning("%s: metadata '%s' is %d characters; ignored", path, key[:40], len(value))
            continue
        meta[key] = _json_or_text(value, path, key)
    if "class_names" not in meta:
        meta = _sidecar(Path(path)) | meta
    if "training" in meta and not isinstance(meta["training"], dict):
        if meta["training"] is not None:  # null: exported without a run record, nothing to say
            log.warning("%s: metadata 'training' is not a JSON object; ignored", path)
        del meta["training"]
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        log.warning("%s: metadata 'class_names' is not a list of strings; ignored", path)
        del meta["class_names"]
    return meta


def model_proto_metadata(onnx_model: ModelProto) -> dict[str, str]:
    """The raw ``{key: text}`` map of an ``onnx.ModelProto``, for ``read_metadata``."""
    return {prop.key: prop.value for prop in onnx_model.metadata_props}


def _sidecar(path: Path) -> dict:
    """The sidecar's content when it is a JSON object describing the file at ``path``, else {}."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file() or sidecar.stat().st_size > MAX_METADATA_CHARS:
        return {}
    side = _json_or_text(sidecar.read_text(errors="replace"), sidecar, "sidecar")
    if not isinstance(side, dict):
        log.warning("%s: sidecar is not a JSON object; ignored", sidecar)
        return {}
    if not sidecar_matches(path, side):
        log.warning("%s: sidecar describes another model file (sha256 differs); ignored", sidecar)
        return {}
    return side


def _json_or_text(value: str, path: str | Path, key: str) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value
    except RecursionError:  # "[[[[...]]]]" 100,000 deep
        log.warning("%s: metadata '%s' is nested too deeply to read; ignored", path, key[:40])
        return None


def local_copy(data: bytes) -> Path:
    """A model's bytes as a file on this machine, for engines that open paths: written once to the
    temporary folder as ``cifar-pack-models/<sha256>.onnx``, atomically (several workers on one node
    may write it at the same time; each then opens a whole file). How a model that travelled
    through a cluster engine's object store is opened on a node without a copy of the file."""
    path = Path(tempfile.gettempdir()) / "cifar-pack-models" / f"{hashlib.sha256(data).hexdigest()}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    return path


def openable_model(model: str | os.PathLike | bytes | object | None) -> str | os.PathLike | None:
    """A path this machine can open for ``model``: the path itself (or None: the default model),
    else the model's bytes (``model``, or what a Ray ``ObjectRef`` ``model`` holds: how a model
    travels through Ray's object store to a node without the file) as ``local_copy`` writes them."""
    if model is None or isinstance(model, (str, os.PathLike)):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        return local_copy(bytes(model))
    import ray  # only an ObjectRef gets here, so Ray is installed and this is a Ray worker

    if not isinstance(model, ray.ObjectRef):
        raise TypeError(f"model must be a path, bytes or a Ray ObjectRef to bytes, got {type(model).__name__}")
    return local_copy(bytes(ray.get(model)))
