"""Every command the README shows is run here (set-up and pytest run in .ci/run), so it cannot go stale.

Commands run in a scratch directory holding a copy of artifacts/samples/. The shared CIFAR-10
archive is replaced by a small class-folder archive of the same layout written by the tests.
The official-download block is pointed at a dead proxy and must fail with the one-line download error.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tarfile
from pathlib import Path

import pytest

from .conftest import run_cli, write_class_folders

ROOT = Path(__file__).resolve().parents[1]
SHARED = "../shared/data/cifar10-train-jpeg.tar.gz"


def readme_blocks() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [
        [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")] for block in blocks
    ]


def test_readme_shows_setup_main_job_and_tests():
    commands = [c for block in readme_blocks() for c in block]
    assert 'pip install -e ".[dev]"' in commands
    assert "cifar-pack predict artifacts/samples/" in commands
    assert "pytest" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet --disable-pip-version-check -e ".[dev]"' in ci
    assert "cifar-pack predict artifacts/samples/" in ci and "pytest" in ci and "ruff check ." in ci
    assert "lint-imports" in commands and "lint-imports" in ci
    assert "mypy" in commands and "\nmypy\n" in ci


@pytest.mark.slow
def test_every_readme_cifar_pack_command_runs(tmp_path):
    scratch = tmp_path / "work"
    shutil.copytree(ROOT / "artifacts" / "samples", scratch / "artifacts" / "samples")
    # Same layout as the shared archive (train/<class>/*.jpg), but 3 classes x 30 images.
    folders = write_class_folders(tmp_path / "src", {"train": 30}, fmt="jpg")
    archive = tmp_path / "data" / "cifar10-train-jpeg.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folders / "train", arcname="train")

    ran = 0
    for block in readme_blocks():
        official_failed = False
        for command in block:
            if not command.startswith("cifar-pack ") or command.startswith("cifar-pack serve"):
                continue  # `serve` runs until stopped: tests/test_serve.py runs it and the README's curl line
            args = [str(archive) if a == SHARED else a for a in shlex.split(command)[1:]]
            if official_failed:
                break  # the rest of the official-download block needs its model
            # Hermetic: the official download goes to a dead proxy, so this test never fetches
            # CIFAR-10 (or trains 20 epochs on it) even where a network is present.
            dead = "http://127.0.0.1:9"
            proc = run_cli(*args, cwd=scratch, timeout=600, env={"HTTPS_PROXY": dead, "https_proxy": dead})
            if "cifar10" in args and "--data" in args:
                assert proc.returncode == 1 and "download" in proc.stderr and "Traceback" not in proc.stderr, (
                    proc.stderr
                )
                official_failed = True
                continue
            assert proc.returncode == 0, (command, proc.stderr[-2000:])
            ran += 1
    assert ran >= 7  # the main job (2) and the whole pipeline (5); the official block needs network
    assert (scratch / "artifacts" / "model.onnx").exists() and (scratch / "artifacts" / "MODEL_CARD.md").exists()


def test_the_readmes_claims_about_the_bundled_model_hold():
    """The README's sentences about the bundled model: the sample's probability, the validation
    accuracy, and how the quick-start samples come back (re-making the model changes them; these must follow)."""

    from cifar_pack.runtime.predictor import Predictor

    text = " ".join((ROOT / "README.md").read_text().split())
    label, probability = re.search(r"The answer is `(\w+)` with probability ([0-9.]+)", text).groups()
    accuracy = float(re.search(r"\(([0-9.]+) % top-1 on the validation split\)", text).group(1))
    right, count = map(int, re.search(r"(\d+) of the (\d+) come back right", text).groups())
    wrong_stated = r"`(\w+\.jpg)` comes back as `(\w+)` \(([0-9.]+)\)|and `(\w+\.jpg)` as `(\w+)` \(([0-9.]+)\)"
    stated = {  # the samples the README names as wrong: {name: (answer, probability to 2 places)}
        (m[0] or m[3]): ((m[1] or m[4]), float(m[2] or m[5])) for m in re.findall(wrong_stated, text)
    }
    sample = re.search(r"samples/(\w+\.jpg)\s+\"http://127\.0\.0\.1:8000/predict", text).group(1)
    predictor = Predictor()
    answer = predictor.predict(ROOT / "artifacts" / "samples" / sample)[0]
    assert answer["label"] == label and round(answer["probability"], 2) == float(probability), answer
    assert round(100 * predictor.metadata["training"]["val_accuracy"], 1) == accuracy
    samples = sorted((ROOT / "artifacts" / "samples").glob("*.jpg"))
    answers = {path.name: predictor.predict(path)[0] for path in samples}
    wrong = {  # <class>_<n>.jpg names its true class
        name: (a["label"], round(a["probability"], 2))
        for name, a in answers.items()
        if a["label"] != name.split("_")[0]
    }
    assert len(answers) == count and len(answers) - len(wrong) == right and len(stated) == count - right
    assert wrong == stated
