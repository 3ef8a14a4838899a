"""Checkpointing and exact resume: after every epoch the last checkpoint, the run state that names
it by sha256, then the best model; and reading them back for ``--resume``.

    model.keras          best epoch by val_accuracy (what export reads)
    last.keras           last completed epoch, with optimizer state (what --resume reads)
    train_state.json     config, data source, epochs done, history so far (what --resume reads)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from ..runtime.errors import UsageError
from ..runtime.fileio import atomic_path, sha256_file, write_json_atomic
from .run_state import BEST_FILE, LAST_FILE, PREV_FILE, STATE_FILE
from .tf_setup import keras

log = logging.getLogger(__name__)


class RunTracker(keras.callbacks.Callback):
    """After every epoch: history entry, best checkpoint, last checkpoint, state file (in that order).

    The state file is written last, so a kill at any moment leaves a state that points at a
    complete ``last.keras`` of the epoch it names (or of a later epoch, which resume then repeats).
    """

    def __init__(self, out: Path, run_state: dict, steps_per_epoch: int):
        super().__init__()
        self.out, self.state, self.steps_per_epoch = out, run_state, steps_per_epoch
        history = run_state["history"]
        self.best = max((h["val_accuracy"] for h in history), default=-1.0)
        self.epoch_started: float | None = None
        self.steps_done = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        # An epoch's seconds run from the end of the one before (its checkpoints written) to its
        # own end, so they hold what happens between fit() calls too: the next epoch's pipeline,
        # fit's set-up and tear-down (the first fit's took 20 s), the checkpoints. Their sum is
        # the wall-clock time from the first epoch's start, not only the steps and validation.
        if self.epoch_started is None:
            self.epoch_started = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.steps_done = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps_done = batch + 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.steps_done < self.steps_per_epoch:
            return  # an epoch cut short (Ctrl-C stopped it): never recorded, so resume repeats it whole
        logs = logs or {}
        seconds = time.perf_counter() - (self.epoch_started or time.perf_counter())
        entry = {"epoch": epoch + 1, "seconds": round(seconds, 3)}
        entry |= {k: float(v) for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        entry["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        improved = entry["val_accuracy"] > self.best
        # Resumable state first, the best model after: a kill at any point leaves a state that
        # names a complete checkpoint by its sha256 (this epoch's, or the previous one kept as
        # last.prev.keras until the state has moved on), and resume rebuilds a best model that
        # the kill cut short (``read_state``).
        last, prev = self.out / LAST_FILE, self.out / PREV_FILE
        if last.exists():
            os.replace(last, prev)
        save_model(self.model, last)
        self.state["history"].append(entry)
        self.state["epochs_done"] = epoch + 1
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + seconds
        self.state["last_sha256"] = sha256_file(last)
        self.state["rng"] = rng_states(self.model)
        if improved:
            self.best = entry["val_accuracy"]
            self.state["best_epoch"] = epoch + 1
        write_json_atomic(self.out / STATE_FILE, self.state)
        if improved:
            save_model(self.model, self.out / BEST_FILE, include_optimizer=False)
        prev.unlink(missing_ok=True)
        self.epoch_started = time.perf_counter()
        log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  %.1fs%s",
            epoch + 1,
            self.state["config"]["epochs"],
            entry["loss"],
            entry["accuracy"],
            entry["val_loss"],
            entry["val_accuracy"],
            seconds,
            "  (best, saved)" if improved else "",
        )


def save_model(model: keras.Model, path: Path, include_optimizer: bool = True) -> None:
    """``model.save`` through a temporary file, so a kill never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        if include_optimizer:
            model.save(tmp)
        else:
            # An uncompiled copy: no optimizer state, so the deployable file is a third the size
            # (the .keras format takes no include_optimizer flag).
            # (clone_model would copy the compiled optimizer along; from_config does not.)
            clone = type(model).from_config(model.get_config())
            clone.set_weights(model.get_weights())
            clone.save(tmp)


def rng_states(model: keras.Model) -> dict[str, list[int]]:
    """The dropout layers' random-generator states, ``{layer name: [seed, counter]}``.

    A ``.keras`` file does not keep them (Keras 3.15: a loaded Dropout starts a new random
    stream), so the run state does, and a resumed run draws the same dropout masks.
    """
    states = {}
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            states[layer.name] = [int(v) for v in keras.ops.convert_to_numpy(generator.state)]
    return states


def restore_rng_states(model: keras.Model, states: dict[str, list[int]]) -> None:
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if generator is not None and layer.name in states:
            generator.state.assign(np.asarray(states[layer.name], dtype=generator.state.dtype))


def load_checkpoint(path: Path) -> keras.Model:
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors ... for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UsageError(f"--resume: {path} is unreadable ({first})") from None
