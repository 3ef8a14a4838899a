"""The decoded-array cache: a source's content key, and its arrays as one ``.npz`` under ``cache_dir()``."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from ..fileio import atomic_path, cache_dir, sha256_file

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def content_key(path: Path) -> str:
    """sha256 of an archive's bytes; for a directory, of every entry's path, size and mtime.

    Hashing 50,000 small files' bytes would cost as much as decoding them, so a directory is
    keyed like a build tool keys sources: any added, removed, resized or touched file (or
    folder: an empty class folder must not hit the cache) gives a new key.
    """
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        rel = Path(root).relative_to(path).as_posix()
        digest.update(f"{rel}/\0".encode())
        for name in sorted(files):
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError:  # a broken link: key on the link itself; reading it fails later, by name
                st = os.lstat(full)
            digest.update(f"{rel}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def cache_path(key: str) -> Path:
    return cache_dir() / f"{key}.v{CACHE_VERSION}.npz"


def read_cache(path: Path) -> tuple[str, list[str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(layout, class names, splits) from a cache file; OSError/ValueError/KeyError if unreadable."""
    with np.load(path, allow_pickle=False) as npz:
        classes = [str(c) for c in npz["class_names"]]
        layout = str(npz["layout"])
        splits = {s: (npz[f"x_{s}"], npz[f"y_{s}"]) for s in ("train", "test") if f"x_{s}" in npz}
    log.info("loaded cached arrays %s", path)
    return layout, classes, splits


def write_cache(path: Path, layout: str, class_names: list[str], splits: dict) -> None:
    """Best effort: a cache that cannot be written only costs the next run a decode."""
    arrays = {"class_names": np.array(class_names), "layout": np.array(layout)}
    for split, (x, y) in splits.items():
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    try:
        with atomic_path(path) as tmp:
            np.savez(tmp, allow_pickle=False, **arrays)  # arrays of numbers and strings only
    except OSError as exc:
        log.warning("could not write cache %s (%s)", path, exc)
