"""examples/README.md's "in your own project" blocks run as written, in a fresh folder outside the
repository with no Python on PATH, and print Python's answer.

Each block copies the files it names from a checkout (CIFAR_PACK), builds with the language's own
tools (gcc, g++, Maven, go, cargo) and classifies a quick-start sample; its last line must be the
example contract's line with Predictor's label and probabilities.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cifar_pack.runtime.images import load_image
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor

from .helpers.examples import EXAMPLES, assert_same_answer, python_free_env

ROOT = Path(__file__).resolve().parents[1]
README = EXAMPLES / "README.md"

pytestmark = pytest.mark.slow


def _blocks() -> dict[str, str]:
    """{"C": block, "C++": block, ...}: the bash block under each "### <language>" heading."""
    text = README.read_text().split("## In your own project", 1)[1]
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    found = {}
    for section in sections:
        title, _, body = section.partition("\n")
        block = re.search(r"```bash\n(.*?)```", body, flags=re.S)
        if block:
            found[title.strip()] = block.group(1)
    return found


def test_the_readme_has_a_block_per_language():
    assert set(_blocks()) == {"C", "C++", "Java", "Go", "Rust"}


@pytest.mark.parametrize("language", ["C", "C++", "Java", "Go", "Rust"])
def test_a_fresh_project_builds_and_answers_as_python(language, tmp_path):
    block = _blocks()[language]
    env = python_free_env(tmp_path / "path") | {"CIFAR_PACK": str(ROOT)}
    work = tmp_path / "outside the repository"
    work.mkdir()
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Maven writes terminal colour resets even under -q -B: invisible on a terminal, dropped here.
    stdout = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
    path, label, probs = stdout.strip().splitlines()[-1].split("\t")
    assert Path(path).name == "horse_1583.jpg"
    predictor = Predictor(BUNDLED_MODEL, device="cpu")
    want = predictor.predict_proba(load_image(path)[None])[0]
    assert_same_answer(label, np.array([float(p) for p in probs.split(" ")]), want, predictor.class_names, path)
