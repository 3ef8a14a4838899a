"""The Python snippet in docs/embedding.md runs as written (onnxruntime alone) and agrees with Predictor."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from cifar_pack.predict import Predictor

from .conftest import make_images

DOC = Path(__file__).resolve().parents[1] / "docs" / "embedding.md"


def test_python_snippet_matches_predictor(exported, tmp_path):
    snippet = re.search(r"```python\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    assert "cifar_pack" not in snippet
    shutil.copy(exported, tmp_path / "cifar10.onnx")
    Image.fromarray(make_images(1, (220, 30, 40), 1)[0]).resize((50, 40)).save(tmp_path / "cat.png")
    Image.fromarray(make_images(1, (30, 40, 220), 2)[0]).save(tmp_path / "ship.jpg", quality=95)
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    predictor = Predictor(exported)
    expected = predictor.predict([tmp_path / "cat.png", tmp_path / "ship.jpg"])
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == [r["label"] for r in expected]
    for line, r in zip(lines, expected):
        assert abs(float(line.split()[1]) - r["probability"]) < 1e-6
