"""``--data cifar10``: the official python release, downloaded once with the standard library.

Kept where Keras' downloader keeps it (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``),
so a copy an earlier cifar-pack or Keras fetched is reused; written atomically, so a broken
download never looks complete. No TensorFlow: the base install can evaluate on ``cifar10`` too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import DataError
from ..fileio import atomic_path

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FILE = "cifar-10-python.tar.gz"
TIMEOUT_S = 60  # per socket operation, not for the whole 163 MB


def download_cifar10() -> Path:
    """The cached release, fetched first if missing; one clear ``DataError`` when offline."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    path = home / "datasets" / CIFAR10_FILE
    if path.is_file():
        return path
    import urllib.request

    try:
        with urllib.request.urlopen(CIFAR10_URL, timeout=TIMEOUT_S) as response, atomic_path(path) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
    except OSError as exc:  # URLError, HTTPError, timeouts and disk errors are all OSErrors
        raise DataError(
            f"cifar10: download from {CIFAR10_URL} failed ({_cause(exc)}); use a local copy instead: "
            "--data cifar-10-python.tar.gz, cifar-10-batches-py/, cifar-10-binary.tar.gz, "
            "or a class-folder directory/.tar.gz such as ../shared/data/cifar10-train-jpeg.tar.gz"
        ) from None
    return path


def _cause(exc: BaseException) -> str:
    """The innermost reason of a chained exception, in one short line ("URLError: ... Connection refused")."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
