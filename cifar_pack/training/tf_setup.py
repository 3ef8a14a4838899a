"""TensorFlow and Keras for the stages that need them, imported once, after the settings that
TensorFlow reads only when it starts. Every cifar-pack module takes them from here:

    from .tf_setup import keras, tf

(import-linter's "TensorFlow only through cifar_pack.tf_setup" contract keeps it that way).

oneDNN: TensorFlow decides at its first import, from ``TF_ENABLE_ONEDNN_OPTS``, whether its
graph uses oneDNN kernels. Unset, it turns them on only on x86-64 CPUs with AVX-512 VNNI/BF16 or
AMX; on AVX2-only CPUs (AMD Zen 3) it runs Eigen kernels, which this TensorFlow wheel compiles for
AVX without FMA, while oneDNN's JIT kernels use AVX2 and FMA. Training the seed CNN in float32 on
AVX2 went from 1.36x to 1.98x the notebook's images/s with oneDNN on (emulated AVX2; on a Zen 3 by
hand, 1.45x to 1.85x: benchmarks/README.md, "Training on both CPU kinds"), so cifar-pack sets it
to 1 where the user has not set it; a value
the user set, 0 or 1, wins. Where TensorFlow would enable oneDNN anyway this changes nothing.

Quiet start-up: TensorFlow writes a few INFO lines ("oneDNN custom operations are on ...")
before its logging reads ``TF_CPP_MIN_LOG_LEVEL``, so the level cannot silence them; the import
applies that level to those early lines itself. Everything else TensorFlow writes during the
import still reaches stderr.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
from collections.abc import MutableMapping

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

# Lines of absl's logging before it is initialised: "I0000 00:00:1795725123.743161   29056 port.cc:153] ...".
_EARLY_LOG_LINE = re.compile(rb"^([IWE])\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] ")
_EARLY_LOG_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2}


def configure_environment(environ: MutableMapping[str, str] | None = None, machine: str | None = None) -> dict:
    """Put cifar-pack's defaults for TensorFlow into ``environ`` (``os.environ`` by default).

    Returns ``{"variable", "value", "source"}``: the oneDNN setting TensorFlow will start with and
    whether it came from the user ("environment"), from cifar-pack ("cifar-pack default") or from
    TensorFlow's own rule for this CPU ("tensorflow default", off x86-64, where oneDNN here means
    something else: Arm's ACL kernels, left to TensorFlow).
    """
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    machine = platform.machine() if machine is None else machine
    if ONEDNN_VARIABLE in env:
        return {"variable": ONEDNN_VARIABLE, "value": env[ONEDNN_VARIABLE], "source": "environment"}
    if machine.lower() not in ("x86_64", "amd64"):
        return {"variable": ONEDNN_VARIABLE, "value": None, "source": "tensorflow default"}
    env[ONEDNN_VARIABLE] = "1"
    return {"variable": ONEDNN_VARIABLE, "value": "1", "source": "cifar-pack default"}


def filter_early_log(text: bytes, min_level: int) -> bytes:
    """Drop absl's pre-initialisation lines below ``min_level`` (TF_CPP_MIN_LOG_LEVEL: 0 keeps all,
    1 drops INFO, 2 also WARNING, 3 also ERROR), and the banner absl prints before them."""
    kept = []
    for line in text.splitlines(keepends=True):
        match = _EARLY_LOG_LINE.match(line)
        if match and _SEVERITY[match.group(1)] < min_level:
            continue
        if line.rstrip() == _EARLY_LOG_BANNER and min_level > 0:
            continue
        kept.append(line)
    return b"".join(kept)


def onednn_enabled() -> bool | None:
    """Whether this TensorFlow runs oneDNN kernels (its own answer), or None where it cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own tests ask the same

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def _import_tensorflow() -> None:
    """``import tensorflow`` with the early log lines filtered (see the module's docstring)."""
    try:
        min_level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        min_level = 0
    if min_level <= 0 or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = filter_early_log(captured.read(), min_level)
            if rest:
                sys.stderr.buffer.write(rest) if hasattr(sys.stderr, "buffer") else sys.stderr.write(rest.decode())
                sys.stderr.flush()


def _starting_setting() -> dict:
    if "tensorflow" in sys.modules:  # too late to decide anything: report what TensorFlow started with
        return {"variable": ONEDNN_VARIABLE, "value": os.environ.get(ONEDNN_VARIABLE), "source": "imported earlier"}
    return configure_environment()


ONEDNN_SETTING = _starting_setting()
_import_tensorflow()

import keras  # noqa: E402  (TensorFlow is in sys.modules by now: Keras takes the backend configured above)
import tensorflow as tf  # noqa: E402  (imported quietly just above; this binds the name)

__all__ = ["ONEDNN_SETTING", "configure_environment", "filter_early_log", "keras", "onednn_enabled", "tf"]
