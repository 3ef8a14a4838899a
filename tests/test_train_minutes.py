"""`cifar-pack train --minutes`: the epochs that fit a time budget, chosen before training from a
timed probe (training/budget.py), recorded, and otherwise an ordinary `--epochs N` run.

No test asserts how long anything took (machines differ and are shared): budgets here are either
far below one epoch or far above the whole run, so the expected epochs do not depend on speed."""

from __future__ import annotations

import json

import numpy as np

from .conftest import assert_one_line_error, run_cli


def _train(tiny_data, out, *options: str):
    """float32 forced: `auto` would choose the precision, so the path, by this machine's CPU."""
    proc = run_cli("train", "--data", tiny_data, "--out", out, "--batch-size", "32", "--precision", "float32", *options)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads((out / "manifest.json").read_text())


def test_a_large_budget_trains_every_epoch_and_records_how_they_were_chosen(tiny_data, tmp_path):
    proc, manifest = _train(tiny_data, tmp_path / "run", "--epochs", "2", "--minutes", "1000")
    budget = manifest["budget"]
    assert manifest["config"]["epochs"] == 2 and budget["epochs"] == 2 and budget["minutes"] == 1000
    assert budget["step_seconds"] > 0 and budget["val_batch_seconds"] > 0 and budget["epoch_seconds"] > 0
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 2
    assert "--minutes 1000: a training batch took" in proc.stderr and "2 of at most 2 epochs fit" in proc.stderr


def test_a_budget_shorter_than_one_epoch_is_refused_in_one_line_with_the_epoch_time(tiny_data, tmp_path):
    """0.001 minutes cannot hold an epoch (nor the start-up it counts from): one line saying how
    long an epoch takes here and what to give instead; nothing trained."""
    proc = run_cli("train", "--data", tiny_data, "--out", tmp_path / "run", "--epochs", "3", "--minutes", "0.001")
    assert_one_line_error(proc, "--minutes 0.001: not even one epoch fits: one takes about", "give --minutes", code=2)
    assert not (tmp_path / "run" / "model.keras").exists()


def test_the_probe_leaves_the_run_as_the_same_epochs_run_would_be(tiny_data, tmp_path):
    """The probe trains a throwaway model, drawing random numbers; the run then starts from the
    seed again, so it starts from the weights an `--epochs 1` run starts from. Compared after the
    epoch at a learning rate of 1e-7: AdamW moves a weight by about its rate a step whatever the
    gradient, so a last-bit difference between two processes (threads summing in another order)
    stays below 1e-6, where another initialisation leaves the weights ~0.3 apart."""
    from cifar_pack.training.tf_setup import keras

    still = ("--epochs", "1", "--lr", "1e-7")
    _train(tiny_data, tmp_path / "plain", *still)
    _train(tiny_data, tmp_path / "budget", *still, "--minutes", "1000")
    plain = keras.models.load_model(tmp_path / "plain" / "model.keras").get_weights()
    budget = keras.models.load_model(tmp_path / "budget" / "model.keras").get_weights()
    assert max(float(np.abs(a - b).max()) for a, b in zip(plain, budget, strict=True)) < 1e-4


def test_minutes_must_be_positive_and_for_a_new_run_on_one_machine(tiny_data, tmp_path):
    for options, fragment in (
        (("--minutes", "0"), "--minutes must be a positive number of minutes, got 0"),
        # nan passed "<= 0" and inf reached the epoch arithmetic: a ValueError/OverflowError after ~7 s
        (("--minutes", "nan"), "--minutes must be a positive number of minutes, got nan"),
        (("--minutes", "inf"), "--minutes must be a positive number of minutes, got inf"),
        (("--minutes", "5", "--strategy", "multi-worker"), "each worker would time itself"),
    ):
        proc = run_cli("train", "--data", tiny_data, "--out", tmp_path / "run", *options)
        assert_one_line_error(proc, fragment, code=2)
    assert not (tmp_path / "run").exists()
    _train(tiny_data, tmp_path / "run", "--epochs", "1")
    proc = run_cli("train", "--out", tmp_path / "run", "--resume", "--minutes", "5")
    assert_one_line_error(proc, "--minutes", "a resumed run keeps the epochs it chose", code=2)
