"""Which image files an input list names, in order, found lazily: files, folders (recursive) and globs.

``iter_images`` yields one path at a time (or a miss, in its place), walking folders in sorted
order with ``os.scandir``: memory stays the same for ten files or ten million, and the order is
``sorted()`` order, as before. Links to folders are never followed inside a search, so a link
loop cannot run forever.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from .images import IMAGE_SUFFIXES

Miss = dict  # {"path": the input as given, "error": why it yields nothing}


def iter_images(inputs: Iterable[str]) -> Iterator[Path | Miss]:
    """Expand files, directories (recursive) and glob patterns, in the order given, lazily.

    A plain file is kept whatever its suffix (so a bad file gets its own error later); files
    found inside directories or by globs are kept only when their suffix is an image suffix.
    Each input that yields nothing (a missing name, a glob matching no image, a folder without
    images) becomes a miss in its place, ``{"path": input, "error": why}``, for the caller to report.
    """
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            why = f"{item}: folder holds no image files ({' '.join(IMAGE_SUFFIXES)})"
            yield from _or_miss(_walk_images(path), item, why)
        elif path.exists() or path.is_symlink():
            yield path  # open_image names what is wrong with it, if anything
        elif any(ch in item for ch in "*?["):
            yield from _or_miss(_glob_images(item), item, f"{item}: pattern matches no image file")
        else:
            yield {"path": item, "error": f"{item}: no such file"}


def _or_miss(hits: Iterator[Path], item: str, why: str) -> Iterator[Path | Miss]:
    found = False
    for hit in hits:
        found = True
        yield hit
    if not found:
        yield {"path": item, "error": why}


def _walk_sorted(root: Path, max_depth: int | None = None) -> Iterator[tuple[Path, str]]:
    """(path, "/"-joined path relative to ``root``) of every non-folder under ``root``, in sorted order.

    Entries of each folder are sorted by name and folders are entered where they sort, which is
    ``sorted()`` order of the whole tree; only one folder's names are held per level. Links to
    folders are skipped (as ``os.walk`` does by default); links to files, FIFOs and the like are
    yielded, for the reader to refuse by name.
    """
    stack: list[Iterator[os.DirEntry[str]]] = [iter(_sorted_entries(root))]
    prefixes = [""]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            prefixes.pop()
            continue
        rel = prefixes[-1] + entry.name
        if entry.is_dir():
            if not entry.is_symlink() and (max_depth is None or len(stack) <= max_depth):
                stack.append(iter(_sorted_entries(Path(entry.path))))
                prefixes.append(rel + "/")
        else:
            yield Path(entry.path), rel


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError:  # unreadable folder: nothing found in it (os.walk's default is the same)
        return []


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _walk_images(root: Path) -> Iterator[Path]:
    """Image files under ``root``, in sorted order."""
    return (path for path, rel in _walk_sorted(root) if _is_image(rel))


def _glob_images(pattern: str) -> Iterator[Path]:
    """``glob`` semantics (``**`` = any number of folders) without following directory links.

    Python's ``glob(recursive=True)`` follows links to folders, so two ``..`` links make it walk
    an exponential tree. Here the fixed prefix of the pattern is walked and every file is matched
    against the pattern translated to a regular expression; without ``**`` the walk stops at the
    pattern's depth.
    """
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if any(ch in part for ch in "*?[")), len(parts))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    if not base.is_dir():
        return iter(())
    regex = re.compile(_translate(parts[fixed:]))
    depth = None if "**" in parts[fixed:] else len(parts) - fixed - 1
    return (base / rel for _, rel in _walk_sorted(base, depth) if regex.fullmatch(rel) and _is_image(rel))


def _translate(parts: tuple[str, ...]) -> str:
    """Glob components -> a regex over "/"-joined relative paths ("**" spans zero or more folders)."""
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append("(?:[^/]+(?:/|$))*" if last else "(?:[^/]+/)*")
        else:
            out.append(_component(part) + ("" if last else "/"))
    return "".join(out)


def _component(part: str) -> str:
    """One glob component (``*``, ``?``, ``[seq]``, ``[!seq]``) -> regex; never crosses "/"."""
    out, i = [], 0
    while i < len(part):
        c = part[i]
        end = part.find("]", i + 2) if c == "[" else -1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif end != -1:
            inner = part[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
