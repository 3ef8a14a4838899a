"""The ``cifar-pack`` command line: parses options, calls one library function, prints the result.

One module per command group, each registering its commands on ``app.app`` (the way optimum
keeps ``commands/``); heavy modules (TensorFlow, tf2onnx, the server's stack) are imported inside
the commands that need them, never at import time, so ``cifar-pack predict`` stays fast.

    app.py       the typer app and ``main`` (one-line usage errors)
    common.py    the command wrapper (one-line errors, exit codes), printing, shared options
    train.py     train, preview-augment
    export.py    export, info
    predict.py   predict
    serve.py     serve
    evaluate.py  evaluate, benchmark
"""

from .app import app, main

# Each module registers its commands on `app` when imported; --help lists them in this order.
# isort: off
from . import train, export, predict, serve, evaluate  # noqa: F401, E402
# isort: on

__all__ = ["app", "main"]
