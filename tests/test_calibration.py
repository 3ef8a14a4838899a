"""The expected calibration error (15 equal-width bins of the top-1 probability) on cases whose
answer is known by hand, and its report and reliability diagram from `cifar-pack evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime.calibration import CALIBRATION_BINS, calibration

from .conftest import run_cli


def _rows(confidences: list[float], classes: int = 3) -> np.ndarray:
    """(N, classes) probabilities whose top-1 is class 0 with these confidences."""
    rows = []
    for c in confidences:
        rest = (1 - c) / (classes - 1)
        rows.append([c] + [rest] * (classes - 1))
    return np.array(rows)


def test_ece_on_a_case_worked_by_hand():
    # Two images at confidence 0.9, one right: bin (0.867, 0.933], accuracy 0.5, |0.5 - 0.9| = 0.4.
    # Two at 0.6 (its bin (0.533, 0.6]: an edge belongs to the bin below), both right: |1 - 0.6| = 0.4.
    probs = _rows([0.9, 0.9, 0.6, 0.6])
    labels = np.array([0, 1, 0, 0])
    result = calibration(probs, labels)
    assert result["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    filled = [b for b in result["bins"] if b["count"]]
    assert [(round(b["upper"], 4), b["count"], b["accuracy"]) for b in filled] == [(0.6, 2, 1.0), (0.9333, 2, 0.5)]
    assert len(result["bins"]) == CALIBRATION_BINS == 15


def test_ece_is_zero_when_confidence_is_accuracy_and_the_gap_when_always_sure():
    # 10 images at 0.7, 7 right: calibrated. 10 at 1.0 with 7 right: 0.3 too sure.
    labels = np.array([0] * 7 + [1] * 3)
    assert calibration(_rows([0.7] * 10), labels)["ece"] == pytest.approx(0.0, abs=1e-12)
    assert calibration(np.eye(3)[[0] * 10], labels)["ece"] == pytest.approx(0.3)


def test_evaluate_reports_ece_and_writes_the_reliability_diagram(exported, tiny_data, tmp_path):
    proc = run_cli("evaluate", "--model", exported, "--data", tiny_data, "--out", tmp_path / "eval", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert 0.0 <= report["ece"] <= 1.0 and len(report["calibration_bins"]) == 15
    assert sum(b["count"] for b in report["calibration_bins"]) == report["samples"]
    with Image.open(report["reliability_png"]) as png:
        assert png.format == "PNG" and png.size[0] > 300
    text = run_cli("evaluate", "--model", exported, "--data", tiny_data, "--out", tmp_path / "eval2").stdout
    assert "expected calibration error:" in text and "reliability.png" in text
