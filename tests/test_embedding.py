"""The Python snippet in docs/embedding.md runs as written (onnxruntime alone) and agrees with Predictor."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_pack.runtime.predictor import Predictor

from .conftest import make_images

DOC = Path(__file__).resolve().parents[1] / "docs" / "embedding.md"


def test_python_snippet_matches_predictor():
    """Run exactly as written, from the root of a checkout (where a new user would paste it)."""
    snippet = re.search(r"```python\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    assert "cifar_pack" not in snippet.replace("cifar_pack/pretrained/", "")  # onnxruntime alone, no cifar_pack import
    root = DOC.parents[1]
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    files = [root / "artifacts" / "samples" / name for name in ("cat_1444.jpg", "ship_1259.jpg")]
    expected = Predictor(root / "cifar_pack" / "pretrained" / "cifar10.onnx").predict(files)
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [r["label"] for r in expected]
    for line, r in zip(lines, expected):
        assert abs(float(line.split()[1]) - r["probability"]) < 1e-6


def test_python_snippet_matches_predictor_on_png_with_alpha_and_odd_size(exported, tmp_path):
    """The snippet's preprocessing, on what the samples lack: alpha, a non-square PNG, a user model."""
    snippet = re.search(r"```python\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    snippet = snippet.replace("cifar_pack/pretrained/cifar10.onnx", "m.onnx")
    snippet = re.sub(r"images = \[.*?\]", 'images = ["cat.png", "ship.jpg"]', snippet)
    shutil.copy(exported, tmp_path / "m.onnx")
    rgba = np.dstack([make_images(1, (220, 30, 40), 1)[0], np.full((32, 32), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").resize((50, 40)).save(tmp_path / "cat.png")
    Image.fromarray(make_images(1, (30, 40, 220), 2)[0]).save(tmp_path / "ship.jpg", quality=95)
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    expected = Predictor(exported).predict([tmp_path / "cat.png", tmp_path / "ship.jpg"])
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [r["label"] for r in expected]
    for line, r in zip(lines, expected):
        assert abs(float(line.split()[1]) - r["probability"]) < 1e-6
