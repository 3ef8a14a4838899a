"""`train --minutes`: how many epochs fit a time budget on this machine, from a timed probe.

The learning-rate schedule, lookahead and warm-up are laid out over the run's epochs before the
first step, so the epochs are chosen before training starts, not adjusted as it goes: a throwaway
copy of the run's model trains a few batches and validates a few, and the epoch count follows
from those seconds. The run is then exactly an ``--epochs N`` run (the record and the model card
say N), reproducible on any machine; only the choice of N depended on this one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..runtime.errors import UsageError
from .config import TrainConfig
from .pipeline import make_pipeline, train_steps, validation_batch_size
from .tf_setup import keras
from .weights import REFRESH_BATCHES

log = logging.getLogger(__name__)

PROBE_STEPS = 6  # training batches timed; the first (tracing) is left out when there are others
PROBE_VAL_BATCHES = 3
MARGIN = 1.1  # an epoch also saves checkpoints and builds its pipeline: 10 % on top of the steps
TAIL_SECONDS = 5.0  # after the last epoch: the model, history, curves and manifest written


@dataclass(frozen=True)
class Budget:
    """The probe's measurements and the epochs chosen; stored in the run's state and manifest."""

    minutes: float
    step_seconds: float  # one training batch of ``batch_size``, after tracing
    val_batch_seconds: float  # one validation batch
    epoch_seconds: float  # the estimate an epoch is charged: steps, validation, refresh, margin
    probe_seconds: float  # what the probe itself took (counted against the budget)
    trace_seconds: float  # the first epoch's extra: tracing the train and test steps (the probe's first batches)
    epochs: int  # chosen: at most the recipe's (or --epochs), at least 1

    def to_json(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def choose_epochs(
    minutes: float,
    elapsed: float,
    new_model: Callable[[], keras.Model],
    config: TrainConfig,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    num_classes: int,
) -> Budget:
    """Epochs that fit in ``minutes`` counted from the command's start, ``elapsed`` seconds ago
    (imports, data loading), capped at ``config.epochs``. ``new_model``: a compiled model like the
    run's, to be thrown away.

    Raises:
        UsageError: not even one epoch fits; the message says how long one takes here.
    """
    started = time.perf_counter()
    step, val_batch, trace = _probe(new_model(), config, arrays, num_classes)
    x_train, _, _, y_val = arrays
    val_batches = math.ceil(len(y_val) / validation_batch_size(config))
    refresh = REFRESH_BATCHES * val_batch if config.architecture == "fast" else 0.0
    epoch = MARGIN * (train_steps(len(x_train), config) * step + val_batches * val_batch + refresh)
    probe = time.perf_counter() - started
    spent = elapsed + probe
    left = minutes * 60.0 - spent - trace - TAIL_SECONDS
    if left < epoch:
        needed = (spent + trace + TAIL_SECONDS + epoch) / 60.0
        raise UsageError(
            f"--minutes {minutes:g}: not even one epoch fits: one takes about {epoch:.0f} s here, after "
            f"{spent:.0f} s of start-up, loading and timing; give --minutes {math.ceil(needed * 10) / 10:g} "
            "or more, or --epochs 1"
        )
    epochs = min(config.epochs, math.floor(left / epoch))
    log.info(
        "--minutes %g: a training batch took %.3f s and a validation batch %.3f s (probe %.1f s, %.0f s since"
        " the command started), so an epoch about %.0f s; %d of at most %d epochs fit",
        minutes, step, val_batch, probe, spent, epoch, epochs, config.epochs,
    )  # fmt: skip
    return Budget(minutes, step, val_batch, epoch, probe, trace, epochs)


class _BatchClock(keras.callbacks.Callback):
    """Seconds of each training and each validation batch, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.train: list[float] = []
        self.test: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.train.append(time.perf_counter() - self._start)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.test.append(time.perf_counter() - self._start)


def _probe(
    model: keras.Model,
    config: TrainConfig,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    num_classes: int,
) -> tuple[float, float, float]:
    """(seconds a training batch, seconds a validation batch, seconds of tracing): medians with the
    first (traced) batches left out, and what those first batches took beyond the median."""
    x_train, y_train, x_val, y_val = arrays
    # Whole batches only when there are enough images; a partial one would time less work.
    probe_config = replace(config, drop_remainder=len(y_train) >= config.batch_size)
    n = min(len(y_train), config.batch_size * PROBE_STEPS)
    m = min(len(y_val), validation_batch_size(config) * PROBE_VAL_BATCHES)
    clock = _BatchClock()
    model.fit(
        make_pipeline(x_train[:n], y_train[:n], num_classes, probe_config, training=True, epoch=0),
        epochs=1, callbacks=[clock], shuffle=False, verbose=0,
    )  # fmt: skip
    validation = make_pipeline(x_val[:m], y_val[:m], num_classes, config, training=False)
    model.evaluate(validation, callbacks=[clock], verbose=0)
    step, val_batch = _typical(clock.train), _typical(clock.test)
    trace = max(0.0, clock.train[0] - step) + max(0.0, clock.test[0] - val_batch)
    return step, val_batch, trace


def _typical(seconds: list[float]) -> float:
    return float(np.median(seconds[1:] if len(seconds) > 1 else seconds))
