"""The Node.js example (examples/node) gives the Python Predictor's answers.

PNG is lossless, so Node sees exactly the pixels Pillow sees and, with the ported resize, feeds the
model the same bytes: probabilities must agree within 1e-5. JPEG decoders differ (jpeg-js vs
Pillow's libjpeg-turbo: IDCT precision and chroma upsampling), so for JPEG only the top-1 must agree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime.images import load_image
from cifar_pack.runtime.predictor import Predictor

from .conftest import COLOURS, make_images

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "node"
pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
    pytest.mark.skipif(
        not (EXAMPLE / "node_modules" / "onnxruntime-node").exists(),
        reason="run `npm install --ignore-scripts` in examples/node first",
    ),
]


def run_node(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["node", str(EXAMPLE / "predict.mjs"), *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("node_images")
    paths = []
    for i, (name, colour) in enumerate(COLOURS.items()):
        base = make_images(1, colour, 200 + i)[0]
        big = Image.fromarray(base).resize((71 + 13 * i, 47 + 9 * i), Image.Resampling.NEAREST)
        paths.append(root / f"{name}-resized.png")
        big.save(paths[-1])
        paths.append(root / f"{name}-32.png")
        Image.fromarray(base).save(paths[-1])
    rgba = np.dstack([make_images(1, (220, 30, 40), 9)[0], np.linspace(0, 255, 32 * 32).reshape(32, 32)])
    paths.append(root / "alpha.png")
    Image.fromarray(rgba.astype(np.uint8), "RGBA").resize((45, 45)).save(paths[-1])
    paths.append(root / "grey.png")
    Image.fromarray(make_images(1, (30, 200, 40), 3)[0]).convert("L").resize((100, 20)).save(paths[-1])
    return paths


def test_node_matches_predictor_on_png(exported, images):
    proc = run_node("--model", exported, "--json", "--top-k", "3", *images)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    predictor = Predictor(exported)
    for node_result, path in zip(results, images):
        expected = predictor.predict(path)[0]
        py_probs = predictor.predict_proba(load_image(path))[0]
        assert node_result["label"] == expected["label"], path
        np.testing.assert_allclose(node_result["probabilities"], py_probs, atol=1e-5, rtol=0, err_msg=str(path))
        assert node_result["top_k"][0]["label"] == expected["label"]


def test_node_jpeg_agrees_on_top1(exported, tmp_path):
    predictor = Predictor(exported)
    paths = []
    for i, (name, colour) in enumerate(COLOURS.items()):
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(make_images(1, colour, 300 + i)[0]).resize((64, 64)).save(path, quality=95)
        paths.append(path)
    results = json.loads(run_node("--model", exported, "--json", *paths).stdout)
    assert [r["label"] for r in results] == [predictor.predict(p)[0]["label"] for p in paths]


def test_node_bad_inputs(exported, images, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    proc = run_node("--model", exported, images[0], tmp_path / "missing.png", text)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'missing.png'}: no such file", f"error: {text}: not a PNG or JPEG image"]
    assert proc.stdout.count("\n") == 1  # the good image is still classified
    missing_model = run_node("--model", tmp_path / "none.onnx", images[0])
    assert missing_model.returncode == 1 and missing_model.stderr.startswith("error: ")
