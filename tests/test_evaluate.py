"""Metrics with answers known by construction, name matching, PNG/Markdown outputs, benchmark JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime.errors import DataError
from cifar_pack.runtime.evaluation import evaluate, map_labels
from cifar_pack.runtime.metrics import confusion_matrix, summarize

from .conftest import assert_one_line_error, make_images, run_cli, write_class_folders


def test_metrics_known_by_construction():
    # 4 "a" (3 right, 1 -> b), 2 "b" (both right), 2 "c" (1 right, 1 -> a)
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    m = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(m, [[3, 1, 0], [0, 2, 0], [1, 0, 1]])
    s = summarize(m, ["a", "b", "c"])
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["per_class"]["a"] == {"precision": pytest.approx(3 / 4), "recall": pytest.approx(3 / 4), "support": 4}
    assert s["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "support": 2}
    assert s["per_class"]["c"] == {"precision": 1.0, "recall": 0.5, "support": 2}
    assert s["class_balance"]["max_to_min_ratio"] == 2.0 and s["class_balance"]["balanced"] is False
    assert {(p["true"], p["predicted"]) for p in s["most_confused"]} == {("a", "b"), ("c", "a")}


def test_never_predicted_class_has_zero_precision_not_nan():
    s = summarize(confusion_matrix(np.array([0, 1]), np.array([0, 0]), 2), ["x", "y"])
    assert s["per_class"]["y"]["precision"] == 0.0 and json.dumps(s)


def test_labels_are_matched_by_name():
    y = np.array([0, 1, 2])
    mapped = map_labels(["red", "green", "blue"], ["blue", "green", "red"], y, "d", "m")
    np.testing.assert_array_equal(mapped, [2, 1, 0])
    with pytest.raises(DataError, match="cyan are not among the classes of m"):
        map_labels(["red", "green", "cyan"], ["blue", "green", "red"], y, "d", "m")
    # A subset of the model's classes is evaluated as it is.
    np.testing.assert_array_equal(
        map_labels(["red", "green"], ["blue", "green", "red"], np.array([0, 1]), "d", "m"), [2, 1]
    )


def test_evaluate_on_a_subset_of_classes_and_warns_about_foreign_val(exported, tmp_path):
    data = tmp_path / "two"
    write_class_folders(tmp_path / "all", {"test": 6, "train": 12})
    for split in ("test", "train"):
        for name in ("red", "blue"):
            (data / split / name).mkdir(parents=True)
            for f in (tmp_path / "all" / split / name).iterdir():
                (data / split / name / f.name).write_bytes(f.read_bytes())
    proc = run_cli("evaluate", "--model", exported, "--data", data, "--out", tmp_path / "e", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["samples"] == 12 and report["absent_classes"] == ["green"]
    assert report["per_class"]["green"]["support"] == 0 and "no images of green" in proc.stderr
    proc = run_cli("evaluate", "--model", exported, "--data", data, "--split", "val", "--out", tmp_path / "e")
    assert proc.returncode == 0 and "is not the data" in proc.stderr, proc.stderr


def _binary_release_with_names(root, names, images_by_name):
    """A CIFAR binary test batch whose batches.meta.txt lists ``names`` in its own order."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rows = []
    for label, name in enumerate(names):
        for img in images_by_name[name]:
            rows.append(np.concatenate([[label], img.transpose(2, 0, 1).reshape(-1)]).astype(np.uint8))
    blob = np.stack(rows).tobytes()
    (folder / "data_batch_1.bin").write_bytes(blob)
    (folder / "test_batch.bin").write_bytes(blob)
    (folder / "batches.meta.txt").write_text("\n".join(names))
    return folder


def test_evaluate_onnx_matches_by_name_and_writes_outputs(exported, tmp_path):
    from cifar_pack.runtime.predictor import Predictor

    images_by_name = {
        n: make_images(6, c, 40 + i)
        for i, (n, c) in enumerate({"blue": (30, 40, 220), "green": (30, 200, 40), "red": (220, 30, 40)}.items())
    }
    # The data lists classes in reverse order: a positional match would score the wrong labels.
    source = _binary_release_with_names(tmp_path, ["red", "green", "blue"], images_by_name)
    report = evaluate(exported, str(source), out=tmp_path / "eval", model_card=tmp_path / "card.md")

    predictor = Predictor(exported)
    expected_pred, expected_true = [], []
    for name, imgs in images_by_name.items():
        expected_pred += list(predictor.predict_proba(imgs).argmax(1))
        expected_true += [predictor.class_names.index(name)] * len(imgs)
    expected = confusion_matrix(np.array(expected_true), np.array(expected_pred), 3)
    assert report["confusion_matrix"] == expected.tolist()
    assert report["accuracy"] == pytest.approx(np.trace(expected) / 18)
    assert report["split"] == "test" and report["samples"] == 18
    assert set(report["per_class"]) == {"blue", "green", "red"}
    assert all(v["support"] == 6 for v in report["per_class"].values())

    png = Image.open(report["confusion_png"])
    assert png.format == "PNG" and png.size[0] > 200
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["accuracy"] == report["accuracy"]
    card = (tmp_path / "card.md").read_text()
    for heading in (
        "## Intended use",
        "## Out-of-scope use",
        "## Training data",
        "## Evaluation data",
        "## Results",
        "## Ethical considerations",
        "## How to reproduce",
    ):
        assert heading in card
    assert f"{report['accuracy']:.2%}" in card and "still answers one of them" in card
    assert "| red |" in card and "consent" in card
    assert "uniform noise (500 images): mean top-1 probability" in card
    # A 3-class model of one's own data: its own facts, none of CIFAR-10's.
    assert "over 3 classes" in card and "the classic Keras CIFAR-10 CNN" in card
    assert "CIFAR-10 (Krizhevsky" not in card and "tiny-images" not in card and "10 classes" not in card
    assert "is not recorded" in card and "Trained in" in card
    _assert_card_reproduces_the_run(card, exported, tmp_path / "card.md")


def _assert_card_reproduces_the_run(card: str, model, card_path) -> None:
    """The card's commands recreate this model: this run's every option, its model, this card."""
    import shlex

    run = model.parent
    manifest = json.loads((run / "manifest.json").read_text())
    block = card.split("## How to reproduce", 1)[1]
    lines = {
        shlex.split(line)[1]: shlex.split(line)[2:] for line in block.splitlines() if line.startswith("cifar-pack ")
    }
    train = dict(zip(lines["train"][::2], lines["train"][1::2]))
    config = manifest["config"]
    assert train["--out"] == str(run) and int(train["--epochs"]) == config["epochs"] == 3
    assert train["--recipe"] == config["recipe"] and int(train["--batch-size"]) == config["batch_size"]
    assert float(train["--lr"]) == config["learning_rate"] and int(train["--seed"]) == config["seed"]
    assert float(train["--validation-split"]) == config["validation_split"]
    assert train["--precision"] == manifest["precision"] == "mixed_bfloat16"
    assert lines["export"][lines["export"].index("--model") + 1] == str(run / "model.keras")
    assert lines["evaluate"][lines["evaluate"].index("--model-card") + 1] == str(card_path)


def test_evaluate_keras_model_and_val_split(trained_run, tiny_data, tmp_path):
    from cifar_pack.training.model import keras_classifier

    report = evaluate(keras_classifier(trained_run / "model.keras"), str(tiny_data), split="val", out=tmp_path)
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert report["format"] == "keras" and report["split"] == "val" and report["samples"] == 24
    assert report["accuracy"] == pytest.approx(manifest["metrics"]["best_val_accuracy"], abs=1.5 / 24)


@pytest.mark.slow
def test_evaluate_cli_errors_and_json(exported, tiny_data, tmp_path):
    proc = run_cli("evaluate", "--model", exported, "--data", tiny_data, "--out", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= {
        "model",
        "data",
        "split",
        "samples",
        "accuracy",
        "per_class",
        "confusion_matrix",
        "confusion_png",
        "seconds",
    }
    assert_one_line_error(
        run_cli("evaluate", "--model", exported, "--data", tiny_data, "--split", "holdout"), "--split", code=2
    )
    flat = tmp_path / "flat"
    for name in ("blue", "green"):
        (flat / name).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(flat / name / "0.png")
    proc = run_cli("evaluate", "--model", exported, "--data", flat, "--out", tmp_path / "flat-eval", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["absent_classes"] == ["red"], proc.stderr
    assert_one_line_error(
        run_cli("evaluate", "--model", exported, "--data", flat, "--split", "test"), "no 'test' split", code=1
    )


@pytest.mark.slow
def test_benchmark_json_shape(trained_run, tiny_data, tmp_path):
    import shutil

    for name in ("model.keras", "manifest.json", "history.json"):
        shutil.copy(trained_run / name, tmp_path / name)
    proc = run_cli("benchmark", "--model", tmp_path / "model.keras", "--data", tiny_data, "--samples", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [r["format"] for r in result["rows"]] == ["keras", "onnx-fp32", "onnx-int8"]
    for row in result["rows"]:
        assert set(row) >= {
            "size_mb",
            "accuracy",
            "latency_ms_p50",
            "latency_ms_p99",
            "throughput_batch256",
            "speedup_vs_keras",
        }
        assert row["throughput_batch256"] > 0 and 0 <= row["accuracy"] <= 1
    assert result["rows"][0]["speedup_vs_keras"] == 1.0
    assert result["rows"][2]["size_mb"] < result["rows"][1]["size_mb"]
    assert result["machine"]["model"] and isinstance(result["machine"]["flags"], list)
    assert "format" in proc.stderr  # the table goes to stderr with --json
    # What it built to measure was temporary: nothing new beside the model, and the rows say so.
    assert not (tmp_path / "model.onnx").exists() and not (tmp_path / "model.int8.onnx").exists()
    assert [r["kept"] for r in result["rows"]] == [True, False, False]
    gate = result["rows"][2]["gate"]
    assert result["rows"][0]["gate"] is None and result["rows"][1]["gate"] is None
    # The gate allows --max-accuracy-drop points, or one image where that is more (quantize.allowed_drop).
    assert gate["max_accuracy_drop"] == 1.0 and gate["allowed_drop_points"] == max(1.0, 100 / result["samples"])
    assert gate["passed"] == (gate["accuracy_drop_points"] <= gate["allowed_drop_points"] + 1e-9)


@pytest.mark.slow
def test_benchmark_shows_a_failing_int8_row_and_exits_zero(tiny_data, tmp_path):
    """A weak int8 file is the most useful row: shown, marked, never written where export would refuse it."""
    from .helpers.keras_models import fragile_model

    model = fragile_model(tmp_path / "fragile.keras")  # its int8 copy loses accuracy at any bound
    args = ("benchmark", "--model", model, "--data", tiny_data, "--samples", "30", "--max-accuracy-drop", "0")
    proc = run_cli(*args, "--keep", "--json", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [r["format"] for r in rows] == ["keras", "onnx-fp32", "onnx-int8"]
    gate = rows[2]["gate"]
    assert gate == {
        "accuracy_drop_points": pytest.approx(100 * (rows[1]["accuracy"] - rows[2]["accuracy"])),
        "max_accuracy_drop": 0.0,
        "allowed_drop_points": pytest.approx(100 / 30),  # never less than one image of the 30
        "passed": False,
    }
    assert gate["accuracy_drop_points"] > 0
    assert "FAIL" in proc.stderr and "would not write this file" in proc.stderr
    # --keep keeps the float32 file it built, but not the int8 file that fails the gate.
    assert (tmp_path / "fragile.onnx").exists() and not (tmp_path / "fragile.int8.onnx").exists()
    assert [r["kept"] for r in rows] == [True, True, False]


def test_model_card_of_an_int8_model_says_where_its_gate_measured(tmp_path):
    """The bundled int8 model's card names the gate's machine and kernel, and the AVX2 bound."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "samples"
    for photo in (root / "artifacts" / "samples").glob("*.jpg"):
        (data / "test" / photo.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        (data / "test" / photo.name.split("_")[0] / photo.name).write_bytes(photo.read_bytes())
    card = tmp_path / "CARD.md"
    int8 = root / "cifar_pack" / "pretrained" / "cifar10.int8.onnx"
    proc = run_cli("evaluate", "--model", int8, "--data", data, "--out", tmp_path / "e", "--model-card", card)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in card.read_text().splitlines() if line.startswith("- int8:"))
    assert "7-bit" in line and "accumulation" in line and "cannot saturate onnxruntime's AVX2 kernel" in line


@pytest.mark.slow
def test_benchmark_of_an_exported_onnx_model_has_no_keras_row(exported, tiny_data, tmp_path):
    """An .onnx model (the bundled one, say) is measured against its own int8 file, without TensorFlow."""
    import shutil

    model = tmp_path / "m.onnx"
    shutil.copy(exported, model)
    shutil.copy(f"{exported}.json", f"{model}.json")
    proc = run_cli("benchmark", "--model", model, "--data", tiny_data, "--samples", "30", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["baseline"] == "onnx-fp32" and [r["format"] for r in result["rows"]] == ["onnx-fp32", "onnx-int8"]
    assert result["rows"][0]["speedup"] == 1.0 and "speedup_vs_keras" not in result["rows"][0]
    assert result["rows"][1]["gate"]["max_accuracy_drop"] == 1.0 and not (tmp_path / "m.int8.onnx").exists()
    proc = run_cli("benchmark", "--model", tmp_path / "x.int8.onnx")
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_evaluate_without_a_test_folder_scores_the_held_out_images_not_the_training_ones(exported, tiny_data, tmp_path):
    """Class folders without test/: the run's own data gives its validation split, other data all of it
    with a warning (720 of 900 images had trained the model, reported as its accuracy)."""
    import shutil

    from cifar_pack.runtime import data as data_mod
    from cifar_pack.runtime.evaluation import EvalModel, default_split
    from cifar_pack.runtime.records import TrainingRecord

    flat = tmp_path / "only_train"
    shutil.copytree(tiny_data / "train", flat / "train")
    other = run_cli("evaluate", "--model", exported, "--data", flat, "--json")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["split"] == "train" and "optimistic" in other.stderr
    dataset = data_mod.load(flat)
    own = EvalModel(
        Path(exported), ["blue", "green", "red"], lambda x: x, TrainingRecord(data_sha256=dataset.sha256), "onnx"
    )
    assert default_split(own, dataset, str(flat)) == "val"
