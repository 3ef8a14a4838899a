"""Every data source -> uint8 NHWC arrays, integer labels and class names; cached; split. No TensorFlow.

Sources (``--data``):

- ``cifar10``: the official python release, downloaded once (``download.py``, cached in
  ``~/.keras/datasets`` where Keras keeps it), then read by the safe loader.
- The official python release: ``cifar-10-python.tar.gz`` or an extracted ``cifar-10-batches-py/``
  (also CIFAR-100's ``cifar-100-python``, fine labels). Pickles are read by an unpickler that only
  allows what the release contains (numpy arrays and builtins); anything else is refused.
- The official binary release: ``cifar-10-binary.tar.gz`` or ``cifar-10-batches-bin/``.
- Class folders, as a directory or a ``.tar``/``.tar.gz``: ``train/<class>/*`` and/or
  ``test/<class>/*``, or ``<class>/*`` directly. Images of any size/mode become 32x32 RGB.

The pieces: ``sources.py`` turns a folder or an archive into one listing of members (safely:
archives are never extracted), ``formats.py`` detects the layout from that listing with one
table and reads it, ``cache.py`` keeps the decoded arrays, ``download.py`` fetches ``cifar10``.
"""

from __future__ import annotations

import logging
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import DEFAULT_SEED, DEFAULT_VALIDATION_SPLIT
from ..errors import DataError, UsageError
from .cache import cache_path, content_key, read_cache, write_cache
from .formats import FORMATS, SPLITS, detect
from .sources import list_source

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Decoded images per split: ``splits[name] = (x, y)`` with x (N, 32, 32, 3) uint8, y (N,) int64."""

    source: str
    sha256: str
    layout: str
    class_names: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DataError(f"{self.source}: has no '{name}' split (it has: {have})")
        return self.splits[name]

    @property
    def has_test(self) -> bool:
        return "test" in self.splits

    def describe(self) -> dict:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "layout": self.layout,
            "class_names": self.class_names,
            "splits": {name: int(len(y)) for name, (_, y) in self.splits.items()},
        }


# ---------------------------------------------------------------------------------------------
# Public entry points


def load(source: str | os.PathLike = "cifar10", use_cache: bool = True) -> Dataset:
    """Load any supported data source.

    Args:
        source: ``"cifar10"`` or a path to an archive or directory (see the module docstring).
        use_cache: read/write the decoded-array cache.

    Returns:
        A ``Dataset`` with a ``train`` and/or ``test`` split.

    Raises:
        DataError: missing, corrupt, hostile or unrecognised source (the message names the file).

    Example:
        >>> ds = load("../shared/data/cifar10-train-jpeg.tar.gz")
        >>> x, y = ds.split("train")        # (50000, 32, 32, 3) uint8, (50000,) int64
    """
    if str(source) == "cifar10":
        from .download import download_cifar10  # urllib only when downloading (20 ms at start-up)

        path = download_cifar10()
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
    key = content_key(path)
    cached = cache_path(key)
    if use_cache and cached.exists():
        try:
            return Dataset(str(source), key, *read_cache(cached))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable cache %s (%s)", cached, exc)
    log.info("decoding %s (first time; cached afterwards)", path)
    dataset = _decode(path, str(source), key)
    if use_cache:
        write_cache(cached, dataset.layout, dataset.class_names, dataset.splits)
    return dataset


def source_help() -> str:
    """What ``--data`` accepts, from the format table (the command line's help text)."""
    return "cifar10 (downloaded once), " + ", ".join(f.help for f in FORMATS) + "."


def check_source(source: str | os.PathLike, option: str = "--data") -> None:
    """Cheap up-front check for the CLI: the source exists and has a format we read.

    Raises ``UsageError`` naming the option. Corrupt contents are found later, by ``load``.
    """
    if str(source) == "cifar10":
        return
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{option} {path}: no such file or directory")
    if path.is_file() and not tarfile.is_tarfile(path):
        raise UsageError(
            f"{option} {path}: unknown format; expected cifar10, a .tar/.tar.gz archive (official release "
            "or class folders) or a directory"
        )


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, val), the same fraction of every class, reproducible by seed.

    Returns two sorted int64 index arrays; every class with >= 2 images keeps at least one each side.
    """
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation split must be between 0 and 1 (exclusive), got {fraction}")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def select(
    dataset: Dataset, split: str | None, validation_split: float = DEFAULT_VALIDATION_SPLIT, seed: int = DEFAULT_SEED
) -> tuple[str, np.ndarray, np.ndarray]:
    """Images for one named split: ``test``, ``train`` (the whole train split) or ``val``.

    ``val`` is the stratified validation part of ``train`` exactly as ``cifar-pack train`` makes it
    (same fraction and seed), so numbers are comparable. ``None`` picks ``test`` when present,
    else the only split there is.
    """
    if split is None:
        split = "test" if dataset.has_test else next(iter(dataset.splits))
    if split == "val":
        x, y = dataset.split("train")
        _, val_idx = stratified_split(y, validation_split, seed)
        return "val", x[val_idx], y[val_idx]
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}': use train, val or test")
    x, y = dataset.split(split)
    return split, x, y


def _decode(path: Path, source: str, key: str) -> Dataset:
    listing = list_source(path)
    fmt = detect(listing)
    class_names, splits = fmt.read(listing)
    return _checked(Dataset(source, key, fmt.layout, class_names, splits))


def _checked(ds: Dataset) -> Dataset:
    for split, (_, y) in ds.splits.items():
        if len(y) == 0:
            raise DataError(f"{ds.source}: the {split} split is empty")
        if y.min() < 0 or y.max() >= len(ds.class_names):
            raise DataError(f"{ds.source}: {split} labels outside 0..{len(ds.class_names) - 1}")
    return ds
