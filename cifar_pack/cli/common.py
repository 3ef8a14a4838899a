"""What every command shares: the wrapper that turns user errors into one line and an exit code,
safe printing, and the options several commands take (each defined once)."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer

from ..runtime.config import ComputePrecision, Engine
from ..runtime.data import source_help
from ..runtime.errors import CifarPackError, MissingExtraError

state = {"debug": False}  # set by the app's callback (--debug) before any command runs
# When the command started, as near as cifar-pack's code can see it (this module loads with the
# command line, before any command's imports): `train --minutes` counts its budget from here.
STARTED = time.perf_counter()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (logs go to stderr).")]
DATA_HELP = source_help()
DataOpt = Annotated[str, typer.Option("--data", help=DATA_HELP)]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="ONNX model (default: artifacts/model.onnx, else the bundled model).")
]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="The engine's intra-op threads.")]
SpinOpt = Annotated[
    bool | None,
    typer.Option(
        "--spin/--no-spin",
        help="Let onnxruntime's idle threads busy-wait between calls (default: no, they share the cores).",
    ),
]
EngineOpt = Annotated[
    Engine,
    typer.Option("--engine", help="What runs the .onnx: onnxruntime, or openvino (the \\[openvino] extra; same file)."),
]
PrecisionOpt = Annotated[
    ComputePrecision,
    typer.Option("--precision", help="Float arithmetic: f32, or bf16 (--engine openvino; int8 files run int8)."),
]


def _setup_logging() -> None:
    # Keep TensorFlow's C++ start-up chatter out of the user's terminal unless debugging.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if state["debug"] else "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("cifar_pack")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if state["debug"] else logging.INFO)
    root.propagate = False


P = ParamSpec("P")
R = TypeVar("R")


# OSErrors that say something about the machine rather than a bug: one line, exit 1.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: logging set-up, one-line errors, exit codes (1 error, 2 usage, 130 Ctrl-C).

    Tracebacks are kept for bugs (anything that is not a CifarPackError) and for --debug.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except ImportError as exc:
            # A runtime-only install (`pip install .`) lacks TensorFlow & co.: say which extra.
            missing = MissingExtraError.from_import(exc, fn.__name__.replace("_", "-"))
            if missing is None or state["debug"]:
                raise
            _fail(missing)
        except CifarPackError as exc:
            if state["debug"]:
                raise
            _fail(exc)
        except OSError as exc:
            # The machine's state, not a bug: a full or read-only file system, no permission. The
            # writers are atomic (fileio.atomic_path), so nothing half-written is left behind.
            if exc.errno not in ENVIRONMENT_ERRNOS or state["debug"]:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            message = f"{where}{exc.strerror or exc} (nothing was left half-written)"
            typer.echo(f"error: {printable(message)}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if state["debug"]:
                raise
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _fail(exc: CifarPackError) -> NoReturn:
    typer.echo(f"error: {printable(exc)}", err=True)
    raise typer.Exit(exc.exit_code) from None


def printable(value: object) -> str:
    """``value`` as text safe for a terminal: control characters (ESC, BEL, CR, ...) escaped.

    Class names come from model metadata and file names from the user's disk: printed raw, an
    ``ESC[2J`` in either would clear the screen. JSON output stays exact (json escapes them).
    """
    return "".join(c if c.isprintable() or c == "\t" else c.encode("unicode_escape").decode() for c in str(value))


def emit(result: dict | list, as_json: bool, text: str | None = None) -> None:
    """Print the result: JSON on stdout with --json, else ``text`` (or key: value lines)."""
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    elif text is not None:
        typer.echo(text)
    else:
        for key, value in dict(result).items():
            typer.echo(f"{printable(key)}: {printable(value)}")
