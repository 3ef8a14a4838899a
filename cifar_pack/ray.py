"""Ray Data batch inference with a cifar-pack model: ``Dataset.map_batches(Classifier, ...)``.

>>> import ray
>>> from cifar_pack.ray import Classifier
>>> ds = ray.data.read_binary_files("photos/", include_paths=True)
>>> ds = ds.map_batches(Classifier, fn_constructor_kwargs={"model": "model.onnx"}, concurrency=2, batch_size=256)
>>> ds.take(1)   # [{"path": "photos/cat.jpg", "label": "cat", "probability": 0.93, "error": None}]

On a cluster, the model reaches every node through Ray's object store: pass its bytes (or an
``ObjectRef`` to them) instead of a path, and each actor writes them once to its node's temporary
folder (``onnx_file.openable_model``) and opens that:

>>> model = ray.put(Path("model.onnx").read_bytes())     # once, on the driver
>>> ds.map_batches(Classifier, fn_constructor_kwargs={"model": model}, ...)

A thin wrapper over ``Predictor``: the same decoder and resize as ``cifar-pack predict``, so the
labels are the CLI's on the same files. One onnxruntime session per actor, reused for every
batch, with as many threads as the CPUs Ray gives the actor (``num_cpus``), not the machine's
cores. The ``[ray]`` extra; this module imports Ray only to read those CPUs.
"""

from __future__ import annotations

import os

import numpy as np

from .runtime.columns import classify_columns, classify_encoded, convert_all
from .runtime.config import DEFAULT_ENGINE, DEFAULT_PRECISION
from .runtime.engines import EngineSettings, ray_worker_cpus, sharing_cores
from .runtime.onnx_file import openable_model
from .runtime.predictor import Predictor

Batch = dict[str, np.ndarray]  # Ray Data's "numpy" batch format: column name -> array


class Classifier:
    """A callable class for ``map_batches``: a batch of encoded files or images -> labels.

    Args:
        model: an exported ``.onnx``: a path every node can read, its bytes, or a Ray ``ObjectRef``
            to its bytes (default: the model ``cifar-pack predict`` uses, e.g. the bundled one).
        top_k: with K > 1, ``top_k_labels`` and ``top_k_probabilities`` columns, best first.
        device: as for ``Predictor`` (``"cpu"`` by default here: actors ask Ray for GPUs explicitly).
        threads: the engine's threads; default: the actor's CPUs.
        engine, precision: as for ``Predictor`` (``engine="openvino"`` with the ``[openvino]`` extra
            on the workers).

    Input columns: ``bytes`` (encoded files, as ``read_binary_files`` gives them; ``path`` is
    kept when present) or ``image`` (decoded arrays of any size, as ``read_images`` gives them).
    Output columns: ``path`` (when given), ``label``, ``probability``, ``error`` (None, or why
    that row's file could not be read: a bad file never fails the job), and the top-k columns.
    """

    def __init__(
        self,
        model: str | os.PathLike | bytes | object | None = None,
        top_k: int = 1,
        device: str = "cpu",
        threads: int | None = None,
        engine: str = DEFAULT_ENGINE,
        precision: str = DEFAULT_PRECISION,
    ):
        threads = threads or ray_worker_cpus()
        # Beside Ray's reading and this actor's own decoding: idle engine threads do not spin.
        self.predictor = Predictor(
            openable_model(model), settings=sharing_cores(EngineSettings.of(engine, precision, device, threads))
        )
        self.top_k = top_k

    def __call__(self, batch: Batch) -> Batch:
        paths = batch.get("path")
        if "bytes" in batch:
            names = [str(p) for p in paths] if paths is not None else None
            columns = classify_encoded(self.predictor, batch["bytes"], names, self.top_k)
        elif "image" in batch:
            columns = classify_columns(self.predictor, convert_all(batch["image"]), self.top_k)
        else:
            raise ValueError(f"cifar_pack.ray.Classifier needs a 'bytes' or an 'image' column, got {sorted(batch)}")
        for name in ("top_k_labels", "top_k_probabilities"):
            if name in columns:
                columns[name] = _rows_as_lists(columns[name])
        return ({"path": np.asarray(paths)} if paths is not None else {}) | columns


def _rows_as_lists(table: np.ndarray) -> np.ndarray:
    """(N, K) -> (N,) object array whose items are K-element lists: what Arrow reads as list<...>.

    Ray converts a 2-D *object* array (the labels) to Arrow by trying a tensor column, fails
    (ArrowConversionError), and its fallback wrote row 1's labels down the first rows of
    ``write_json``'s output while the other rows lost the column. Lists convert cleanly.
    """
    out = np.empty(len(table), dtype=object)
    for i, row in enumerate(table):
        out[i] = row.tolist()  # Python str/None and float (NaN on error rows, as before)
    return out
