"""Small file helpers: atomic writes, content hashes, package versions. No heavy imports."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or Ctrl-C inside the block leaves the old file (or no file) at ``path``, never half
    of a new one. The suffix is kept so that writers which look at it (Keras, Pillow) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        # A write error (a full disk) names no file: name the one being written, not its temp.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike) -> Iterator[None]:
    """Be the one writer of ``path`` for the block: an exclusive lock on ``.<name>.lock`` beside it.

    A second process asking for the same lock gets ``BlockingIOError`` at once. The lock file is
    removed after; the inode check makes a process that locked a file just removed try again, so
    two writers never both hold a lock. Without ``fcntl`` (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock = Path(path).parent / f".{Path(path).name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise
        if lock.exists() and os.stat(lock).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the previous holder removed the file we locked: lock the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def remove_stale_temps(folder: str | os.PathLike, names: list[str]) -> list[Path]:
    """Delete temporary files that ``atomic_path`` left for these names when a process was killed.

    Only our own naming is touched: ``.<stem>.<random><suffix>`` beside ``<stem><suffix>``.
    """
    removed = []
    for name in names:
        target = Path(folder) / name
        for tmp in Path(folder).glob(f".{target.stem}.*{target.suffix}"):
            if tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
    return removed


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: object) -> Path:
    return write_bytes_atomic(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(obj: object) -> object:
    # numpy scalars and arrays, Paths: the only non-JSON types our reports carry.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions by distribution name, without importing the packages."""
    from importlib import metadata  # 14 ms: only the stages that record versions pay for it

    names = names or (
        "cifar-pack",
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "onnxruntime-gpu",
        "numpy",
        "pillow",
    )
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def cache_dir() -> Path:
    """Where decoded datasets are cached: $CIFAR_PACK_CACHE, else ~/.cache/cifar-pack."""
    root = os.environ.get("CIFAR_PACK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cifar-pack"
    )
    return Path(root)
