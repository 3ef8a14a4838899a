"""Training stage: tf.data pipeline with augmentation layers -> model.fit -> best checkpoint.

Files a run writes into ``out`` (all atomically; checkpoints.py has the resume files):

    model.keras          best epoch by val_accuracy (what export reads)
    last.keras, train_state.json   the newest epoch and the state naming it (what --resume reads)
    history.json         per-epoch loss/accuracy/val_loss/val_accuracy/lr/seconds
    curves.png           loss and accuracy curves, train and validation
    manifest.json        config, data source and sha256, class names, versions, metrics, seconds

One run reads top to bottom: ``train`` (options, data, precision, worker role) -> ``_fit``
(``_build_or_restore`` the model, ``_run_epochs``, ``_write_run_record``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..runtime import data as data_mod
from ..runtime.errors import CifarPackError, Interrupted, UsageError
from ..runtime.fileio import package_versions, remove_stale_temps, write_json_atomic
from ..runtime.records import HISTORY_FILE, MANIFEST_FILE
from ..runtime.sysinfo import describe_cpu
from .architectures import WHITEN_BIAS, build_fast_model, build_model, fast_shape, whitening_weights
from .budget import choose_epochs
from .checkpoints import RunTracker, load_checkpoint, restore_rng_states, save_model
from .config import DEFAULT_RECIPE, TrainConfig, check_minutes, validate_config
from .multi_worker import is_chief, multi_worker_step_logs, work_around_keras_multi_worker
from .pipeline import (
    describe_kernels,
    make_optimizer,
    make_pipeline,
    make_strategy,
    plot_curves,
    resolve_precision,
    tensorflow_runtime,
    train_steps,
)
from .progress import EpochProgress, GracefulStop, first_ctrl_c_stops
from .run_state import BEST_FILE, LAST_FILE, PREV_FILE, STATE_FILE, check_resumable, read_state, stored_settings
from .tf_setup import keras, tf
from .weights import BatchNormRefresh, FreezeLayer, Lookahead

log = logging.getLogger(__name__)


class TrainingInterrupted(Interrupted):
    """Ctrl-C during fit; the message says where the best checkpoint is and how to resume."""


class WorkerLost(CifarPackError):
    """``--strategy multi-worker``: another worker stopped (TensorFlow's coordination service saw
    its heartbeats stop and aborted the collectives); the message says what was kept."""


@dataclass
class TrainResult:
    model: Path
    epochs: int
    best_val_accuracy: float
    best_epoch: int
    test_accuracy: float | None
    seconds: float
    images_per_second: float
    history: Path
    curves: Path
    manifest: Path

    def to_json(self) -> dict:
        return {
            "model": str(self.model),
            "epochs": self.epochs,
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "test_accuracy": self.test_accuracy,
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 1),
            "history": str(self.history),
            "curves": str(self.curves),
            "manifest": str(self.manifest),
        }


@dataclass
class _Run:
    """What one run works with: where it writes, its settings, its data, and what it resumes."""

    out: Path
    source: str
    config: TrainConfig
    dataset: data_mod.Dataset
    precision: str
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_val, y_val
    state: dict | None = None  # the interrupted run's state (--resume)
    checkpoint: Path | None = None  # the checkpoint that state names
    minutes: float | None = None  # --minutes: choose the epochs that fit (budget.py)
    started: float = 0.0  # time.perf_counter() when train() began: the budget counts from there
    budget: dict | None = None  # --minutes: what the probe measured and chose (Budget.to_json), kept on resume

    @property
    def num_classes(self) -> int:
        return len(self.dataset.class_names)

    @property
    def data_path(self) -> str:
        # Absolute, so that --resume, export and evaluate find the data from any working directory.
        return self.source if self.source == "cifar10" else str(Path(self.source).resolve())


def train(
    source: str,
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    resume: bool = False,
    minutes: float | None = None,
    started: float | None = None,
) -> TrainResult:
    """Train the seed CNN on ``source`` and keep the best epoch as ``out/model.keras``.

    Args:
        source: any ``data.load`` source ("cifar10", an archive, a directory).
        out: run directory; created if missing.
        config: recipe and options (``config.RECIPES`` holds "default" and "seed"); None: the
            default recipe, or with ``resume`` the stored config.
        resume: continue the interrupted run in ``out`` from its last completed epoch; the stored
            config and data source are used, so the finished run equals an uninterrupted one
            (``run_state.check_resumable``: only more epochs at a constant learning rate may differ).
        minutes: a time budget: train as many of the config's epochs as fit, chosen before the
            first step from a timed probe (``budget.choose_epochs``); the record says how many.
        started: ``time.perf_counter()`` when the budget began (the command line's start); default: now.

    Returns:
        TrainResult with the paths written and the headline metrics.

    Raises:
        DataError, UsageError: bad source or option. TrainingInterrupted: Ctrl-C (checkpoints kept).

    Example:
        >>> train("../shared/data/cifar10-train-jpeg.tar.gz", "artifacts", RECIPES["default"])
    """
    started = time.perf_counter() if started is None else started
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    state, checkpoint = read_state(out) if resume else (None, None)
    if state is not None:
        source, config = _resumed_settings(out, state, config)
    config = config or DEFAULT_RECIPE
    validate_config(config)
    check_minutes(minutes, resume, config)
    chief = config.strategy != "multi-worker" or is_chief(os.environ.get("TF_CONFIG"))
    loaded = _load_data(source, config, state)  # before anything is written: bad data leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    if chief:  # a killed earlier process's half-written files (ours by name); workers share --out
        remove_stale_temps(out, [LAST_FILE, PREV_FILE, BEST_FILE, STATE_FILE, HISTORY_FILE, MANIFEST_FILE])
    run = _Run(out, source, config, *loaded, state=state, checkpoint=checkpoint, minutes=minutes, started=started)
    keras.utils.set_random_seed(config.seed)
    log.info("compute: %s; %s", run.precision, describe_kernels())
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(run.precision)
    # TF's multi-worker guide: every worker saves (saving can run collectives), but only the
    # chief into the real run folder; the others write into a scratch copy deleted at the end.
    scratch = None if chief else Path(tempfile.mkdtemp(prefix="cifar-pack-worker-"))
    if scratch is not None:
        shutil.copytree(out, scratch, dirs_exist_ok=True)  # a resumed worker reads last.keras too
    try:
        result = _fit(replace(run, out=scratch or out))
    finally:
        # The policy is process-global: leave it as we found it for the caller's next model.
        keras.mixed_precision.set_dtype_policy(previous_policy)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch is None:
        return result
    log.info("worker done; the chief writes the run to %s", out)
    return replace(result, **{k: out / getattr(result, k).name for k in ("model", "history", "curves", "manifest")})


def _resumed_settings(out: Path, state: dict, config: TrainConfig | None) -> tuple[str, TrainConfig]:
    """(data source, config) of the interrupted run: a resumed run is the stored run (or it, longer)."""
    source, stored = stored_settings(out, state)  # the absolute path: --resume works from any folder
    if config is not None:
        check_resumable(out, state, config)
    config = config or stored
    log.info("resuming %s after epoch %d/%d", out, state["epochs_done"], config.epochs)
    if config.epochs > stored.epochs:
        log.info("continuing to %d epochs: the learning rate is constant, so nothing else changes", config.epochs)
    return source, config


def _load_data(
    source: str, config: TrainConfig, state: dict | None
) -> tuple[data_mod.Dataset, str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(dataset, precision, (x_train, y_train, x_val, y_val)): the run's stratified split."""
    dataset = data_mod.load(source)
    if state is not None and state["data"].get("sha256") not in (None, dataset.sha256):
        raise UsageError(f"--resume: the data at {source} changed since the run started (content key differs)")
    x_all, y_all = dataset.split("train")
    train_idx, val_idx = data_mod.stratified_split(y_all, config.validation_split, config.seed)
    arrays = (x_all[train_idx], y_all[train_idx], x_all[val_idx], y_all[val_idx])
    log.info("data: %d train, %d validation images, %d classes", len(train_idx), len(val_idx), len(dataset.class_names))
    return dataset, resolve_precision(config.precision), arrays


def _fit(run: _Run) -> TrainResult:
    strategy = make_strategy(run.config.strategy)
    if run.minutes is not None and run.state is None:
        budget = choose_epochs(
            run.minutes, time.perf_counter() - run.started, lambda: _new_model(run, strategy), run.config,
            run.arrays, run.num_classes,
        )  # fmt: skip
        run = replace(run, config=replace(run.config, epochs=budget.epochs), budget=budget.to_json())
        keras.utils.set_random_seed(run.config.seed)  # the probe drew random numbers: start as --epochs N would
    elif run.state is not None and run.state.get("budget"):
        run = replace(run, budget=run.state["budget"])  # a resumed --minutes run keeps its record
    model = _build_or_restore(run, strategy)
    state = {
        "config": run.config.to_dict(),
        "data": run.dataset.describe() | {"path": run.data_path},
        "precision": run.precision,
        "epochs_done": run.state["epochs_done"] if run.state else 0,
        "history": run.state["history"] if run.state else [],
        "train_seconds": run.state.get("train_seconds", 0.0) if run.state else 0.0,
        "complete": False,
    }
    if run.budget is not None:
        state["budget"] = run.budget
    _run_epochs(run, model, strategy, state)
    state["complete"] = True
    write_json_atomic(run.out / STATE_FILE, state)
    return _write_run_record(run, state["history"])


def _build_or_restore(run: _Run, strategy: tf.distribute.Strategy) -> keras.Model:
    """The compiled seed CNN, or the interrupted run's checkpoint with its dropout RNG states."""
    with strategy.scope():
        if run.checkpoint is not None and run.state is not None:  # read_state gives both or neither
            model = load_checkpoint(run.checkpoint)
            restore_rng_states(model, run.state.get("rng") or {})
            if run.state.get("best_epoch") == run.state["epochs_done"]:
                # The kill may have come between the state and the best model: rebuild it.
                save_model(model, run.out / BEST_FILE, include_optimizer=False)
            return model
    return _new_model(run, strategy)


def _new_model(run: _Run, strategy: tf.distribute.Strategy) -> keras.Model:
    """The recipe's network, compiled with its optimiser and schedule over ``run.config.epochs``."""
    with strategy.scope():
        steps_per_epoch = train_steps(len(run.arrays[1]), run.config)
        if run.config.architecture == "fast":
            model = build_fast_model(run.num_classes, whitening_weights(run.arrays[0]), **fast_shape(run.config))
        else:
            model = build_model(run.num_classes)
        model.compile(
            optimizer=make_optimizer(run.config, steps_per_epoch),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=run.config.label_smoothing),
            metrics=["accuracy"],
        )
        return model


def _run_epochs(run: _Run, model: keras.Model, strategy: tf.distribute.Strategy, state: dict) -> None:
    """Fit from the state's next epoch to the last; the tracker records each one as it ends.

    The first Ctrl-C ends the epoch in progress after its batch (not recorded) and raises
    ``TrainingInterrupted`` naming the last recorded epoch, the one ``--resume`` continues after.
    """
    config, (x_train, y_train, x_val, y_val) = run.config, run.arrays
    val_ds = make_pipeline(x_val, y_val, run.num_classes, config, training=False)
    steps = train_steps(len(y_train), config)
    callbacks: list[keras.callbacks.Callback] = []
    if config.architecture == "fast":  # before the tracker: it validates and saves what these leave
        if config.lookahead:
            callbacks.append(Lookahead(config.epochs * steps, steps))
        callbacks.append(BatchNormRefresh.from_training_set(x_train, config.batch_size, config.seed))
        if config.whiten_bias_epochs:
            callbacks.append(FreezeLayer(WHITEN_BIAS, after_epochs=config.whiten_bias_epochs))
    callbacks.append(RunTracker(run.out, state, steps))
    if sys.stderr.isatty():
        callbacks.append(EpochProgress(config.epochs, steps, config.batch_size))
    multi_worker = config.strategy == "multi-worker"
    if multi_worker:
        work_around_keras_multi_worker(model)
    try:
        with strategy.scope(), multi_worker_step_logs(multi_worker), first_ctrl_c_stops() as stop:
            callbacks.append(GracefulStop(stop))
            # One fit() per epoch, each on that epoch's own pipeline: a resumed run then sees
            # exactly the data order and augmentation an uninterrupted one would (the compiled
            # train step is reused across calls, so this costs one tf.data trace per epoch).
            for epoch in range(state["epochs_done"], config.epochs):
                if stop.is_set():
                    break
                model.fit(
                    make_pipeline(x_train, y_train, run.num_classes, config, training=True, epoch=epoch),
                    validation_data=val_ds,
                    epochs=epoch + 1,
                    initial_epoch=epoch,
                    callbacks=callbacks,
                    shuffle=False,  # tf.data already shuffles
                    verbose=0,
                )
        if not stop.is_set():
            return
    except KeyboardInterrupt:
        pass  # a second Ctrl-C, or one outside fit(): the state file still names the last whole epoch
    except tf.errors.UnavailableError as exc:
        if not multi_worker:
            raise
        _worker_lost(run, exc)
    _interrupted(run, state)


def _epochs_on_disk(run: _Run) -> int:
    """Whole epochs the state file on disk records (what --resume continues after); 0 if none."""
    try:
        return int(json.loads((run.out / STATE_FILE).read_text())["epochs_done"])
    except (OSError, ValueError, KeyError):
        return 0  # no state written yet: nothing to resume


def _interrupted(run: _Run, state: dict) -> NoReturn:
    """The one message for a stopped run, from the state file on disk: --resume reads the same file."""
    done, config = _epochs_on_disk(run), run.config
    if done == 0:
        raise TrainingInterrupted(f"interrupted before the first epoch finished: nothing was saved in {run.out}")
    raise TrainingInterrupted(
        f"interrupted after epoch {done}/{config.epochs}; best checkpoint kept at {run.out / BEST_FILE}; "
        f"resume with: cifar-pack train --out {run.out} --resume"
    )


def _worker_lost(run: _Run, exc: Exception) -> NoReturn:
    """One line for a cluster that lost a worker: which one (TensorFlow's task names), what the run
    folder keeps, how to go on. A worker other than the chief writes a scratch copy, so says less."""
    text = str(exc)
    unhealthy = text.split("unhealthy", 1)[-1]  # "The following tasks are unhealthy (...): /job:..."
    tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", unhealthy)))
    who = ", ".join(tasks) if tasks else text.splitlines()[0][:200]
    done = _epochs_on_disk(run)
    if done == 0:
        raise WorkerLost(f"a worker of the cluster stopped ({who}) before the first epoch finished: nothing to resume")
    raise WorkerLost(
        f"a worker of the cluster stopped ({who}) after epoch {done}/{run.config.epochs}; the run folder keeps it: "
        "start every worker again with --resume (each needs the run folder)"
    )


def _test_accuracy(run: _Run) -> float | None:
    """The best epoch's accuracy on the data's test split, when it has one."""
    if not run.dataset.has_test:
        return None
    x_test, y_test = run.dataset.split("test")
    probs = keras.models.load_model(run.out / BEST_FILE).predict(x_test, batch_size=512, verbose=0)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == y_test))
    log.info("test accuracy of the best epoch: %.4f", accuracy)
    return accuracy


def _write_run_record(run: _Run, history: list[dict]) -> TrainResult:
    """history.json, curves.png and manifest.json; the result the command line prints."""
    best = max(history, key=lambda h: h["val_accuracy"])
    test_accuracy = _test_accuracy(run)
    write_json_atomic(run.out / HISTORY_FILE, history)
    curves = plot_curves(history, run.out / "curves.png")
    seconds = sum(h["seconds"] for h in history)
    # One definition of training speed, here and in the summary line: training images seen in
    # the recorded epochs over those epochs' seconds (fit and validation, as the tracker times them).
    images_per_second = len(run.arrays[1]) * len(history) / seconds if seconds else 0.0
    manifest = {
        "model": BEST_FILE,
        "config": run.config.to_dict(),
        "precision": run.precision,
        "strategy": run.config.strategy,
        "data": run.dataset.describe()
        | {"path": run.data_path, "validation_split": run.config.validation_split, "split_seed": run.config.seed},
        "class_names": run.dataset.class_names,
        "versions": package_versions(),
        "tensorflow": tensorflow_runtime(),
        "metrics": {
            "best_epoch": best["epoch"],
            "best_val_accuracy": best["val_accuracy"],
            "final_val_accuracy": history[-1]["val_accuracy"],
            "test_accuracy": test_accuracy,
        },
        "seconds": round(seconds, 2),
        "trained_on": describe_cpu(),
        "images_per_second": round(images_per_second, 1) if seconds else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if run.budget is not None:  # --minutes: how the epochs were chosen
        manifest["budget"] = run.budget
    write_json_atomic(run.out / MANIFEST_FILE, manifest)
    return TrainResult(
        model=run.out / BEST_FILE,
        epochs=len(history),
        best_val_accuracy=best["val_accuracy"],
        best_epoch=best["epoch"],
        test_accuracy=test_accuracy,
        seconds=seconds,
        images_per_second=images_per_second,
        history=run.out / HISTORY_FILE,
        curves=curves,
        manifest=run.out / MANIFEST_FILE,
    )
