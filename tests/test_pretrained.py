"""The bundled pretrained model: present, within size, accurate enough, shipped in the wheel, the default."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cifar_pack.runtime.config import CIFAR10_CLASSES
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor

from .conftest import run_cli
from .helpers.samples import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
INT8 = BUNDLED_MODEL.with_name("cifar10.int8.onnx")


def test_bundled_models_exist_with_provenance():
    for path in (BUNDLED_MODEL, INT8):
        assert path.exists() and path.stat().st_size < 10 * 1024 * 1024
        assert Path(f"{path}.json").exists()
    for name in ("README.md", "MODEL_CARD.md", "manifest.json", "history.json"):
        assert (BUNDLED_MODEL.parent / name).exists(), name


def test_bundled_model_contract_and_accuracy():
    p = Predictor(BUNDLED_MODEL)
    assert p.class_names == list(CIFAR10_CLASSES)
    assert p.metadata["training"]["val_accuracy"] >= 0.80
    assert p.metadata["parity"]["passed"] and p.metadata["parity"]["samples"] >= 1000
    q = Predictor(INT8).metadata["quantization"]
    assert q["accuracy_drop_points"] <= 1.0


def test_bundled_models_classify_the_samples():
    samples = sorted(SAMPLE_DIR.glob("*.jpg"))
    assert len(samples) == 20
    truth = [s.name.split("_")[0] for s in samples]
    for model in (BUNDLED_MODEL, INT8):
        predicted = [r["label"] for r in Predictor(model).predict(samples)]
        correct = sum(a == b for a, b in zip(predicted, truth))
        assert correct >= 14, (model.name, list(zip(truth, predicted)))  # an 80% model on 20 held-out images


def test_predict_defaults_to_the_bundled_model(tmp_path):
    proc = run_cli("predict", SAMPLE_DIR, "--json", cwd=tmp_path)  # no artifacts/model.onnx in tmp_path
    assert proc.returncode == 0, proc.stderr
    assert str(BUNDLED_MODEL) in proc.stderr
    assert len(json.loads(proc.stdout)) == 20


@pytest.mark.slow
def test_wheel_ships_the_models(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("cifar_pack-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("cifar10.onnx", "cifar10.onnx.json", "cifar10.int8.onnx", "cifar10.int8.onnx.json"):
        assert f"cifar_pack/pretrained/{name}" in names
