"""The official CIFAR-10 release's Python layout, written small by the tests (the real one cannot be
downloaded here): random uint8 images and labels in ``cifar-10-batches-py`` pickles."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np

from cifar_pack.runtime.config import CIFAR10_CLASSES


def release_arrays(n_per_batch=20, batches=2, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(batches + 1):  # the last one is the test batch
        x = rng.integers(0, 256, size=(n_per_batch, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, size=n_per_batch)
        parts.append((x, y))
    return parts


def write_python_release(root: Path, parts, as_tar: bool) -> Path:
    """The Toronto layout: cifar-10-batches-py/{data_batch_N, test_batch, batches.meta} pickles."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i + 1}" for i in range(len(parts) - 1)] + ["test_batch"]
    for name, (x, y) in zip(names, parts):
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # NHWC -> the release's NCHW rows
        entry = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in y],
            b"data": rows,
            b"filenames": [f"{i}.png".encode() for i in range(len(x))],
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": len(parts[0][0])}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    if not as_tar:
        return folder
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive
