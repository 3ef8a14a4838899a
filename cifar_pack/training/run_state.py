"""A run's state on disk, read without TensorFlow: ``--resume`` answers a missing or changed run
at once, before the 3-5 s TensorFlow import, and says what a resumed run may change.

    model.keras          best epoch by val_accuracy (what export reads)
    last.keras           last completed epoch, with optimizer state (what --resume reads)
    train_state.json     config, data source, epochs done, history so far (what --resume reads)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from ..runtime.errors import UsageError
from ..runtime.fileio import sha256_file
from ..runtime.records import TRAIN_OPTIONS
from .config import TrainConfig

STATE_FILE = "train_state.json"
LAST_FILE = "last.keras"  # the newest epoch, with optimizer state, for --resume
PREV_FILE = "last.prev.keras"  # the epoch before, kept only while a new checkpoint is being recorded
BEST_FILE = "model.keras"


def read_state(out: Path) -> tuple[dict, Path | None]:
    """The interrupted run's state and the checkpoint it names (None before the first epoch).

    Raises:
        UsageError: no run, a corrupt state, or no checkpoint matching it; each in one line.
    """
    path = out / STATE_FILE
    if not path.exists():
        raise UsageError(f"--resume: no interrupted run in {out} ({STATE_FILE} is missing)")
    try:
        state = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--resume: {path} is not valid JSON ({exc})") from None
    missing = [k for k in ("config", "data", "epochs_done", "history") if not isinstance(state, dict) or k not in state]
    if missing:
        raise UsageError(f"--resume: {path} is not a cifar-pack run state (missing {', '.join(missing)})")
    if state["epochs_done"] == 0:
        return state, None
    for candidate in (out / LAST_FILE, out / PREV_FILE):
        if candidate.exists() and state.get("last_sha256") in (None, sha256_file(candidate)):
            return state, candidate
    raise UsageError(
        f"--resume: no checkpoint in {out} matches {STATE_FILE} (epoch {state['epochs_done']}): "
        f"{LAST_FILE} is missing, truncated or from another run"
    )


def stored_settings(out: Path, state: dict) -> tuple[str, TrainConfig]:
    """(data source, config) the interrupted run was started with; the source as an absolute path."""
    try:
        config = TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--resume: {out / STATE_FILE} holds an unusable config ({exc})") from None
    return state["data"].get("path") or state["data"]["source"], config


def resumed_config(out: Path, state: dict, given: Mapping[str, object]) -> tuple[str, TrainConfig]:
    """(data source, config) of a resumed run, from the options given again on the command line.

    A resumed run is the stored run: an option equal to its stored value is accepted (the first
    command plus ``--resume`` works), a change is refused by name; only a longer ``--epochs``
    may continue a run, and only where the learning rate does not depend on the run's length.

    Raises:
        UsageError: a changed option, naming it with the stored and the given value.
    """
    source, stored = stored_settings(out, state)
    data = given.get("--data")
    if (
        data is not None
        and data not in (state["data"].get("source"), source)
        and str(Path(str(data)).resolve()) != source
    ):
        _refuse(out, "--data", data, state["data"].get("source"))
    epochs = stored.epochs
    for option, name in TRAIN_OPTIONS.items():
        value = given.get(option)
        if value is None or value == getattr(stored, name):
            continue
        if name != "epochs" or not isinstance(value, int):
            _refuse(out, option, value, getattr(stored, name))
        else:
            epochs = value
    config = stored.with_overrides(epochs=epochs)
    check_resumable(out, state, config)
    return source, config


def check_resumable(out: Path, state: dict, config: TrainConfig) -> None:
    """``config`` may continue the run in ``out``: the stored one, or it with more epochs at a constant rate."""
    _, stored = stored_settings(out, state)
    changed = [f.name for f in fields(TrainConfig) if getattr(config, f.name) != getattr(stored, f.name)]
    for name in changed:
        option = next((o for o, n in TRAIN_OPTIONS.items() if n == name), name)
        if name != "epochs":
            _refuse(out, option, getattr(config, name), getattr(stored, name))
        elif config.epochs < max(stored.epochs, state["epochs_done"] + 1):
            _refuse(out, option, config.epochs, stored.epochs)
        elif stored.schedule != "constant":
            raise UsageError(
                f"--resume: --epochs {config.epochs} cannot change the run in {out} ({stored.epochs} epochs): its "
                f"{stored.schedule} learning-rate schedule was laid out over {stored.epochs} epochs and decays to "
                "zero there; start a new run with another --out to train longer"
            )


def _refuse(out: Path, option: str, given: object, stored: object) -> NoReturn:
    raise UsageError(
        f"--resume continues the run in {out} with its stored settings; {option} {given} cannot change its "
        f"{stored} (start a new run with another --out instead)"
    )
