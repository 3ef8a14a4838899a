"""The official CIFAR-10 release's Python layout, written small by the tests (the real one cannot be
downloaded here): random uint8 images and labels in the Python (pickles) and binary layouts."""

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
    return _archived(folder, root / "cifar-10-python.tar.gz") if as_tar else folder


def write_binary_release(root: Path, parts, as_tar: bool) -> Path:
    """The binary layout: cifar-10-batches-bin/{data_batch_N.bin, test_batch.bin, batches.meta.txt}."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i + 1}.bin" for i in range(len(parts) - 1)] + ["test_batch.bin"]
    for name, (x, y) in zip(names, parts):
        rows = np.concatenate([y.astype(np.uint8)[:, None], x.transpose(0, 3, 1, 2).reshape(len(x), -1)], axis=1)
        (folder / name).write_bytes(rows.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return _archived(folder, root / "cifar-10-binary.tar.gz") if as_tar else folder


def _archived(folder: Path, archive: Path) -> Path:
    """``folder`` as the release ships it: one .tar.gz holding the folder by name."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive
