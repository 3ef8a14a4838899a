"""The data layouts cifar-pack reads, as one detection table: a new format is one ``Format`` entry.

Each entry says how to recognise its layout from a ``Listing``'s file names, how to read it into
splits, and how ``--data``'s help describes it. The table is tried in order; class folders,
the catch-all, come last.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from ..config import CIFAR10_CLASSES, IMAGE_SIZE, INPUT_BYTES
from ..errors import DataError, InputError
from ..images import IMAGE_SUFFIXES, decode_bytes, resolve_max_pixels
from .sources import Listing, Reader

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
MAX_BATCH_ROWS = 50_000  # images in one release batch: 10,000 (CIFAR-10), 50,000 (CIFAR-100 train)
PIXELS_PER_ROW = INPUT_BYTES  # one 32x32 RGB image, R plane, G, B

Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (x (N, 32, 32, 3) uint8, y (N,) int64)


@dataclass(frozen=True)
class Format:
    layout: str  # recorded in the dataset and its cache
    help: str  # how --data's help names it
    detect: Callable[[set[str]], bool]  # from the set of member file names
    read: Callable[[Listing], tuple[list[str], Splits]]  # -> (class names, splits)


def detect(listing: Listing) -> Format:
    names = set(listing.by_base_name())
    return next(f for f in FORMATS if f.detect(names))


# ---------------------------------------------------------------------------------------------
# The official python release (CIFAR-10 and CIFAR-100): pickles of numpy arrays


class _ReleaseUnpickler(pickle.Unpickler):
    """Only what the Toronto pickles contain: numpy arrays/dtypes and Python 2 byte strings."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global '{module}.{name}'")
        return super().find_class(module, name)


def _unpickle(name: str, data: bytes) -> dict:
    try:
        obj = _ReleaseUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{name}: unsafe or invalid pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError, RecursionError) as exc:
        raise DataError(f"{name}: corrupt pickle ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{name}: expected a dict in the pickle, found {type(obj).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _python_batch(name: str, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    entry = _unpickle(name, raw)
    label_key = "labels" if "labels" in entry else "fine_labels"
    data, labels = entry.get("data"), entry.get(label_key)
    # Check the arrays against the release's shapes and against what the file can hold before
    # building anything: a pickle may describe a 1-byte buffer with zero strides as 500,000
    # images, which copying would turn into gigabytes.
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{name}: not a CIFAR batch (`data` must be a 2-D uint8 array)")
    rows, width = data.shape
    if width != PIXELS_PER_ROW or not 0 < rows <= MAX_BATCH_ROWS:
        raise DataError(f"{name}: `data` has shape {data.shape}, expected (N <= {MAX_BATCH_ROWS:,}, {PIXELS_PER_ROW})")
    if data.nbytes > len(raw) or any(stride <= 0 for stride in data.strides):
        raise DataError(f"{name}: `data` claims {data.nbytes:,} bytes of pixels in a {len(raw):,}-byte file")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != rows:
        raise DataError(f"{name}: expected {rows} labels in `{label_key}`")
    try:
        y = np.array(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{name}: labels are not integers ({exc})") from None
    x = data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)  # NCHW rows -> NHWC
    return np.ascontiguousarray(x), y


def _names(values: list[str | bytes]) -> list[str]:
    return [c.decode() if isinstance(c, bytes) else c for c in values]


def _read_python_release(listing: Listing) -> tuple[list[str], Splits]:
    files = listing.by_base_name()
    if "meta" in files:  # CIFAR-100
        classes = _names(_unpickle("meta", files["meta"]())["fine_label_names"])
        return classes, {s: _python_batch(s, files[s]()) for s in SPLITS if s in files}
    classes = list(CIFAR10_CLASSES)
    if "batches.meta" in files:
        classes = _names(_unpickle("batches.meta", files["batches.meta"]()).get("label_names", classes))
    parts = [_python_batch(n, files[n]()) for n in sorted(n for n in files if n.startswith("data_batch_"))]
    splits = {"train": (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))}
    if "test_batch" in files:
        splits["test"] = _python_batch("test_batch", files["test_batch"]())
    return classes, splits


# ---------------------------------------------------------------------------------------------
# The official binary release: fixed-size records


def _binary_batch(name: str, raw_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    record = 1 + PIXELS_PER_ROW  # 1 label byte + the pixel bytes (R plane, G, B)
    raw = np.frombuffer(raw_bytes, dtype=np.uint8)
    if raw.size == 0 or raw.size % record:
        raise DataError(f"{name}: truncated or not a CIFAR-10 binary batch ({raw.size} bytes)")
    rows = raw.reshape(-1, record)
    x = rows[:, 1:].reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), rows[:, 0].astype(np.int64)


def _read_binary_release(listing: Listing) -> tuple[list[str], Splits]:
    files = listing.by_base_name()
    classes = list(CIFAR10_CLASSES)
    if "batches.meta.txt" in files:
        listed = [line.strip() for line in files["batches.meta.txt"]().decode().splitlines() if line.strip()]
        classes = listed or classes
    names = sorted(n for n in files if n.startswith("data_batch_") and n.endswith(".bin"))
    parts = [_binary_batch(n, files[n]()) for n in names]
    splits = {"train": (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))}
    if "test_batch.bin" in files:
        splits["test"] = _binary_batch("test_batch.bin", files["test_batch.bin"]())
    return classes, splits


# ---------------------------------------------------------------------------------------------
# Class folders: train/<class>/*, test/<class>/* or <class>/*, images of any size and mode


def _group_class_folders(listing: Listing) -> dict[str, dict[str, list[tuple[str, Reader]]]]:
    """``{split: {class: [(name, read)]}}``; a class folder of unsupported files only is an error."""
    grouped: dict[str, dict[str, list]] = {}
    other: dict[str, set[str]] = {}  # folder -> suffixes of the files in it that are not images
    for name, read in listing.members:
        parts = name.split("/")
        if any(p.startswith(".") or p == "__MACOSX" for p in parts) or len(parts) < 2:
            continue
        split = parts[-3] if len(parts) >= 3 and parts[-3] in SPLITS else "train"
        suffix = os.path.splitext(name)[1].lower()
        if suffix not in IMAGE_SUFFIXES or read is None:
            if parts[-2] not in SPLITS:
                other.setdefault("/".join(parts[:-1]), set()).add(suffix or "(no suffix)")
            continue
        grouped.setdefault(split, {}).setdefault(parts[-2], []).append((name, read))
    # A class folder whose files are all of an unsupported type would silently drop a class.
    imaged = {n.rsplit("/", 1)[0] for g in grouped.values() for members in g.values() for n, _ in members}
    for folder, suffixes in sorted(other.items()):
        if folder not in imaged:
            raise DataError(
                f"{listing.origin}: class folder '{folder}' holds no supported image ({', '.join(sorted(suffixes))} "
                f"files only; supported: {' '.join(IMAGE_SUFFIXES)})"
            )
    for d in listing.empty_dirs:
        components = PurePosixPath(d).parts
        if components and components[-1] not in SPLITS and not components[-1].startswith("."):
            raise DataError(f"{listing.origin}: class folder '{d}' is empty")
    if not grouped:
        loose = [n for n, _ in listing.members if "/" not in n and os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES]
        if loose:
            raise DataError(
                f"{listing.origin}: {len(loose)} images directly in the folder, none in a class folder; training "
                "learns labels from folder names: put each class's images in a folder named after it "
                "(<class>/*.jpg, or train/<class>/* and test/<class>/*)"
            )
        raise DataError(f"{listing.origin}: no images found (expected train/<class>/*, test/<class>/* or <class>/*)")
    return grouped


def _read_class_folders(listing: Listing) -> tuple[list[str], Splits]:
    grouped = _group_class_folders(listing)
    classes = sorted(set().union(*(g.keys() for g in grouped.values())))
    if len(classes) < 2:
        raise DataError(f"{listing.origin}: found {len(classes)} class folder(s); need at least 2")
    index = {c: i for i, c in enumerate(classes)}
    max_pixels = resolve_max_pixels()
    splits = {}
    for split, by_class in grouped.items():
        unknown = set(classes) - set(by_class)
        if split == "test" and unknown:
            log.warning("%s: test split has no images for %s", listing.origin, ", ".join(sorted(unknown)))
        items = [(n, r, index[c]) for c in sorted(by_class) for n, r in by_class[c]]
        splits[split] = _decode_items(items, listing, split, max_pixels)
    return classes, splits


def _decode_items(items: list, listing: Listing, split: str, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the readable images among ``items`` ((name, read, label) each).

    An unreadable file (truncated, not an image, over the pixel cap) is skipped and counted, as
    tf.data's ``ignore_errors`` would: one broken file in 50,000 must not stop a training run. The
    warning names the first few; a split where no file is readable is an error.
    """
    x = np.empty((len(items), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    keep = np.zeros(len(items), bool)
    skipped: list[str] = []
    # One thread: a 32x32 JPEG costs ~75 us, mostly Python-level work under the GIL, so a
    # thread pool measured slower here (1.4 s vs 0.75 s for 10,000 images).
    for i, (name, read, _) in enumerate(items):
        try:
            x[i], keep[i] = decode_bytes(read(), str(listing.origin / name), max_pixels), True
        except InputError as exc:
            skipped.append(str(exc))
        if i and i % 10_000 == 0:
            log.info("decoding %s: %d/%d", split, i, len(items))
    if skipped and not keep.any():
        raise DataError(f"{listing.origin}: no readable image in the {split} split ({skipped[0]})")
    if skipped:
        shown = "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        log.warning(
            "%s: skipped %d unreadable image(s) of %d in %s: %s", listing.origin, len(skipped), len(items), split, shown
        )
    y = np.array([label for _, _, label in items], dtype=np.int64)
    return x[keep], y[keep]


FORMATS = (
    Format(
        "cifar-python",
        "cifar-10-python.tar.gz / cifar-10-batches-py/ (also CIFAR-100's cifar-100-python)",
        lambda names: "data_batch_1" in names or {"train", "meta"} <= names,
        _read_python_release,
    ),
    Format(
        "cifar-binary",
        "cifar-10-binary.tar.gz / cifar-10-batches-bin/",
        lambda names: "data_batch_1.bin" in names,
        _read_binary_release,
    ),
    Format(
        "class-folders",
        "class folders (dir or .tar/.tar.gz: train/<class>/*, test/<class>/* or <class>/*)",
        lambda names: True,
        _read_class_folders,
    ),
)
