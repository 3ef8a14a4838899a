"""The expected calibration error (15 equal-width bins of the top-1 probability) on cases whose
answer is known by hand, and its report and reliability diagram from `cifar-pack evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_fitting_recovers_a_known_temperature():
    """Labels drawn from softmax(z / 2): the fitted temperature is 2 (NLL's minimum), within sampling noise."""
    from cifar_pack.formats.calibrate import fit_temperature, scaled

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20_000, 10))
    truth = scaled(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 2.0)
    labels = np.array([rng.choice(10, p=row) for row in truth])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # the uncalibrated model: T = 1
    assert fit_temperature(probs, labels) == pytest.approx(2.0, rel=0.05)


@pytest.fixture(scope="module")
def uncalibrated(tmp_path_factory) -> Path:
    """The bundled model as it was before its temperature was folded in: the Div before the softmax,
    its constant and the metadata's record taken out again (the bundled file is calibrated)."""
    import onnx

    from cifar_pack.formats.calibrate import TEMPERATURE
    from cifar_pack.runtime.onnx_file import model_proto_metadata, read_metadata, write_model
    from cifar_pack.runtime.predictor import BUNDLED_MODEL

    model = onnx.load(str(BUNDLED_MODEL))
    (div,) = [n for n in model.graph.node if n.input[1:] == [TEMPERATURE]]
    for node in model.graph.node:
        node.input[:] = [div.input[0] if name == div.output[0] else name for name in node.input]
    model.graph.node.remove(div)
    (constant,) = [t for t in model.graph.initializer if t.name == TEMPERATURE]
    model.graph.initializer.remove(constant)
    metadata = read_metadata(model_proto_metadata(model), BUNDLED_MODEL)
    metadata.pop("calibration")
    metadata.pop("model_sha256", None)
    return write_model(tmp_path_factory.mktemp("uncalibrated") / "cifar10.onnx", model, metadata)


def test_the_fold_computes_softmax_of_logits_over_t_and_keeps_every_argmax(photos, uncalibrated):
    """The Div inserted before the softmax is exact: the folded file equals softmax(log p / T) of
    the unfolded one (float32 graph vs float64 numpy: ~1e-7), and no top-1 changes."""
    import onnx
    import onnxruntime as ort

    from cifar_pack.formats.calibrate import fold_temperature, scaled

    model = onnx.load(str(uncalibrated))
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"images": photos}
    )[0]
    before, after = run(model), run(fold_temperature(model, 0.5))
    np.testing.assert_allclose(after, scaled(before, 0.5), atol=1e-6, rtol=0)  # float32 vs float64 rounding
    assert (after.argmax(1) == before.argmax(1)).all() and after.max(1).mean() > before.max(1).mean()


def test_export_calibrate_folds_records_and_refuses_twice(tmp_path, uncalibrated):
    """`export --model M.onnx --calibrate`: the temperature in the graph and the metadata, the ECE
    before and after, accuracy unchanged; a second --calibrate is one line."""
    from cifar_pack.runtime.config import CIFAR10_CLASSES
    from cifar_pack.runtime.predictor import Predictor

    from .conftest import assert_one_line_error
    from .helpers.samples import SAMPLES

    data = tmp_path / "data"
    for name in CIFAR10_CLASSES:  # the samples under their own classes, each five times: 10 a class
        (data / name).mkdir(parents=True)
    for sample in SAMPLES:
        for copy in range(5):
            (data / sample.name.split("_")[0] / f"{copy}_{sample.name}").write_bytes(sample.read_bytes())
    out = tmp_path / "calibrated.onnx"
    proc = run_cli("export", "--model", uncalibrated, "--output", out, "--calibrate", "--data", data, "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)["calibration"]
    assert 0.05 < record["temperature"] < 20 and record["samples"] == 20  # 20 % of 100 images: the val split
    assert record["ece_after"] <= record["ece_before"] + 1e-9
    calibrated, plain = Predictor(out), Predictor(uncalibrated)
    assert calibrated.metadata["calibration"]["temperature"] == pytest.approx(record["temperature"])
    photos = np.stack([plain_image for plain_image in _photos()])
    assert (calibrated.predict_proba(photos).argmax(1) == plain.predict_proba(photos).argmax(1)).all()
    again = run_cli("export", "--model", out, "--calibrate", "--data", data, "--output", tmp_path / "twice.onnx")
    assert_one_line_error(again, "already calibrated", code=1)


def _photos() -> np.ndarray:
    from cifar_pack.runtime.images import load_image

    from .helpers.samples import SAMPLES

    return np.stack([load_image(p) for p in SAMPLES])


def test_the_bundled_model_is_calibrated_and_folding_undone_gives_its_probabilities_back(photos, uncalibrated):
    """The bundled file carries its temperature (graph and metadata); with the Div taken out again
    it computes softmax(log p * T) of the bundled one: the fold is the only change calibration made."""
    from cifar_pack.formats.calibrate import scaled
    from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor

    bundled = Predictor(BUNDLED_MODEL)
    temperature = bundled.metadata["calibration"]["temperature"]
    before = Predictor(uncalibrated).predict_proba(photos)
    # float32 graph vs float64 numpy, with the reference's log rounding grown by 1/T: the export check's 1e-5 / T
    atol = 1e-5 / temperature
    np.testing.assert_allclose(bundled.predict_proba(photos), scaled(before, temperature), atol=atol, rtol=0)
