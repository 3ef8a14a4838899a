"""A folder or a tar archive as one listing of members, read safely and lazily.

Both kinds of source become the same thing, a ``Listing``: every file's relative POSIX name with
a function that reads its bytes (None for a file nothing will read), plus the folders that hold
no file. ``formats.py`` then detects the layout from the listing alone, whatever the container.

Archives are read in memory member by member and never extracted, so a hostile member name
cannot write anywhere; members with absolute or ``..`` paths, and links, are refused outright.
Sizes are checked before anything is read: a 1 GiB notes.txt in an archive is never read.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..images import IMAGE_SUFFIXES

# Bounds on what a data source may ask of memory and time, checked before anything is read.
MAX_IMAGE_BYTES = 64 * 2**20  # one image file (a 48 MP phone JPEG is ~25 MB)
MAX_BATCH_BYTES = 200 * 2**20  # one release batch (CIFAR-100's `train` pickle is 155 MB)
MAX_MEMBERS = 1_000_000  # files in one archive or folder (CIFAR-10 has 60,000)
# Files the official releases consist of; everything else is read only if an image.
RELEASE_FILES = {"batches.meta", "meta", "train", "test", "test_batch", "batches.meta.txt", "test_batch.bin"}

Reader = Callable[[], bytes]


@dataclass
class Listing:
    """``members``: (relative POSIX name, reader or None) in a stable order; ``empty_dirs``: folders with no file."""

    origin: Path
    members: list[tuple[str, Reader | None]] = field(default_factory=list)
    empty_dirs: list[str] = field(default_factory=list)

    def by_base_name(self) -> dict[str, Reader]:
        """The readable members by file name alone (release files sit in one folder)."""
        return {PurePosixPath(name).name: read for name, read in self.members if read is not None}


def list_source(path: Path) -> Listing:
    """The listing of a folder or a ``.tar``/``.tar.gz``; ``DataError`` naming what is wrong."""
    return _list_folder(path) if path.is_dir() else _list_tar(path)


def wanted(name: str) -> bool:
    """Whether a member can matter: an image, or a file of an official release."""
    base = PurePosixPath(name).name
    return (
        os.path.splitext(base)[1].lower() in IMAGE_SUFFIXES or base in RELEASE_FILES or base.startswith("data_batch_")
    )


def size_limit(name: str) -> int:
    base = PurePosixPath(name).name
    return MAX_BATCH_BYTES if base in RELEASE_FILES or base.startswith("data_batch_") else MAX_IMAGE_BYTES


def _list_folder(path: Path) -> Listing:
    listing = Listing(path)
    for root, dirs, files in os.walk(path):  # one walk: 50,000 files make rglob + stat slow
        dirs.sort()
        rel = os.path.relpath(root, path).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        if not dirs and not files:
            listing.empty_dirs.append(rel)
        # Plain strings and a bound read: pathlib objects for 50,000 files cost ~0.2 s.
        for f in sorted(files):
            name = prefix + f
            read = functools.partial(read_file, os.path.join(root, f), size_limit(name)) if wanted(name) else None
            listing.members.append((name, read))
        if len(listing.members) > MAX_MEMBERS:
            raise DataError(f"{path}: more than {MAX_MEMBERS:,} files; refusing to read them all")
    return listing


def _list_tar(path: Path) -> Listing:
    listing, dirs = Listing(path), []
    try:
        with tarfile.open(path, "r:*") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise DataError(f"{path}: more than {MAX_MEMBERS:,} archive members; refusing to read them all")
                name = _safe_member_name(path, member.name)
                if name is None:
                    continue  # the archive's own root, "./"
                if member.isdir():
                    dirs.append(name)
                elif member.issym() or member.islnk():
                    raise DataError(f"{path}: refused, archive member '{member.name}' is a link")
                elif member.isfile():
                    listing.members.append((name, _read_member(path, tar, member, name) if wanted(name) else None))
            _check_tar_end(path, tar)
    except tarfile.ReadError as exc:
        raise DataError(f"{path}: not a readable tar archive ({exc})") from None
    except (EOFError, OSError, tarfile.TarError) as exc:
        raise DataError(f"{path}: corrupt or truncated archive ({exc or type(exc).__name__})") from None
    if not any(read for _, read in listing.members):
        raise DataError(f"{path}: archive holds no image or CIFAR batch files")
    # Folders holding no file at any depth: every ancestor of a file is non-empty (linear time).
    non_empty = {parent.as_posix() for n, _ in listing.members for parent in PurePosixPath(n).parents}
    listing.empty_dirs = [d for d in dirs if d not in non_empty]
    return listing


def _check_tar_end(path: Path, tar: tarfile.TarFile) -> None:
    """An uncompressed tar must end with its end-of-archive marker (a 512-byte block of zeros).

    tarfile takes a file that stops at (or inside) a member header for the end of the archive, so
    a cut .tar lost its last members silently; a cut .tar.gz fails in gzip. Same rule for both.
    """
    if not isinstance(tar.fileobj, io.BufferedReader):
        return  # compressed: the decompressor itself refuses a stream that stops early
    tar.fileobj.seek(tar.offset)
    if tar.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
        raise DataError(f"{path}: truncated archive: it stops after {tar.offset:,} bytes, without its end marker")


def _read_member(archive: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> Reader:
    """Read a member now (a compressed tar streams once); decided from its header, before reading."""
    limit = size_limit(name)
    if member.size > limit:
        raise DataError(f"{archive}: member '{name}' is {member.size:,} bytes, over the {limit:,}-byte limit")
    handle = tar.extractfile(member)  # None only for members that are not regular files
    if handle is None:
        raise DataError(f"{archive}: member '{name}' is not a regular file")
    data = handle.read()
    return lambda: data


def _safe_member_name(archive: Path, name: str) -> str | None:
    """The member's normalised relative name ("./a/b" -> "a/b"); None for the root "./" itself.

    Raises:
        DataError: an absolute name, a ".." component or a drive letter (it would point outside).
    """
    if name.startswith(("/", "\\")) or ".." in PurePosixPath(name).parts:
        raise DataError(f"{archive}: refused, archive member '{name}' points outside the archive")
    parts = PurePosixPath(name).parts  # PurePosixPath drops "." components: "./.x/y" -> (".x", "y")
    if not parts:
        return None
    if ":" in parts[0]:
        raise DataError(f"{archive}: refused, archive member '{name}' points outside the archive")
    return "/".join(parts)


def read_file(path: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """A regular file's bytes (links to one are followed); FIFOs, devices, broken links refused.

    The type and size are checked before opening: opening a FIFO blocks until a writer comes,
    and a link to /dev/zero never ends.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror or type(exc).__name__}; a broken link?)") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file (a FIFO, device or socket); refusing to read it")
    if st.st_size > limit:
        raise DataError(f"{path}: {st.st_size:,} bytes, over the {limit:,}-byte limit for one file")
    with open(path, "rb") as fh:
        return fh.read(limit + 1)
