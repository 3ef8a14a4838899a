"""Shared fixtures: small datasets written by the tests themselves, one tiny trained run, its export.

The real CIFAR-10 archives cannot be downloaded here, so tests write small archives in each
official layout; nothing is mocked: TensorFlow, tf2onnx, onnxruntime and Pillow all run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The rule for comparing probabilities across batch sizes, thread counts, engines or CPU kinds:
# never bit-equality. The same float32 model sums its products in another order when the kernel
# blocks the batch differently, splits work across threads, or uses 256- instead of 512-bit
# vectors: ~1e-7 relative error on logits of magnitude <= 20, through softmax (dp = p (1 - p) dz)
# at most ~5e-7 on a probability. 1e-6 leaves a factor of two and still catches any real
# difference (a wrong image, a lost scaling, a wrong layout moves probabilities by 1e-2 or more).
FLOAT32_REORDER_ATOL = 1e-6

# The tiny shared run's precision (see trained_run).
TRAIN_PRECISION = "float32" if os.environ.get("ONEDNN_MAX_CPU_ISA") else "mixed_bfloat16"

COLOURS = {"blue": (30, 40, 220), "green": (30, 200, 40), "red": (220, 30, 40)}


def make_images(n: int, colour, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8: a noisy colour field with a darker square at a random place."""
    rng = np.random.default_rng(seed)
    base = np.array(colour, dtype=np.int16)
    x = base + rng.integers(-40, 40, size=(n, 32, 32, 3))
    for img in x:
        r, c = rng.integers(0, 20, size=2)
        img[r : r + 12, c : c + 12] //= 2
    return np.clip(x, 0, 255).astype(np.uint8)


def write_class_folders(root: Path, per_class: dict[str, int], fmt: str = "png", seed: int = 0) -> Path:
    for s, (split, n) in enumerate(per_class.items()):
        for c, (name, colour) in enumerate(COLOURS.items()):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(make_images(n, colour, seed + 10 * s + c)):
                Image.fromarray(img).save(folder / f"{i:04d}.{fmt}")
    return root


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Decoded-array cache in a temporary folder, so tests neither read nor pollute ~/.cache."""
    os.environ["CIFAR_PACK_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras_home"))
    yield


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Class folders: train/{blue,green,red}/ 40 PNGs each, test/ 10 each."""
    return write_class_folders(tmp_path_factory.mktemp("tiny"), {"train": 40, "test": 10})


@pytest.fixture(scope="session")
def trained_run(tiny_data, tmp_path_factory) -> Path:
    """One real training run (3 epochs) shared by the export, predict and evaluate tests.

    bf16 is forced, not left to ``auto``: export's float32 rebuild of a mixed-precision model is
    then tested on every CPU (on AVX2-only ones TensorFlow emulates bf16: slow, but this run is tiny).
    Except under ``ONEDNN_MAX_CPU_ISA`` (tests/test_kernel_families.py): TensorFlow decides from
    CPUID, not from that cap, to give bf16 convolutions to oneDNN, which then has no bf16 kernel.
    """
    from cifar_pack.training.config import RECIPES
    from cifar_pack.training.train import train

    out = tmp_path_factory.mktemp("run")
    config = RECIPES["default"].with_overrides(epochs=3, batch_size=32, learning_rate=3e-3, precision=TRAIN_PRECISION)
    train(str(tiny_data), out, config)
    return out


@pytest.fixture(scope="session")
def exported(trained_run, tiny_data) -> Path:
    from cifar_pack.training.export import export_onnx

    # Uncalibrated: tests compare this file's probabilities with Keras' (and a 3-epoch model's
    # temperature would sit at the edge of its range); test_calibration.py covers the default.
    return export_onnx(trained_run / "model.keras", data=str(tiny_data), parity_samples=60, calibrate=False).onnx


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run the installed console script exactly as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cifar_pack", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> None:
    """A user error: non-zero exit, no traceback, an 'error:' line naming what is wrong."""
    assert proc.returncode != 0, proc.stdout
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:") or "Error" in line]
    assert errors, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


def _checkout_status() -> str | None:
    """`git status --porcelain` of this checkout (None outside git): what tests must leave unchanged."""
    root = Path(__file__).resolve().parents[1]
    try:
        proc = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


FIGURES: list[str] = []  # lines tests report (rows, seconds, restarts): the run's summary prints them


@pytest.fixture
def figures():
    """``figures("...")``: a line for the run's summary ("figures"), shown whether the test passed or not."""
    return FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def pytest_sessionstart(session):
    session.config._checkout_before = _checkout_status()


def pytest_sessionfinish(session, exitstatus):
    """Tests write only to temporary folders: a run that changed the checkout fails."""
    before = getattr(session.config, "_checkout_before", None)
    after = _checkout_status()
    if before is not None and after is not None and after != before:
        changed = sorted(set(after.splitlines()) ^ set(before.splitlines()))
        print(f"\nerror: the tests changed the checkout: {changed}")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def photos() -> np.ndarray:
    """The 20 quick-start samples as the model sees them: (20, 32, 32, 3) uint8 (test_engines.py
    overrides it with more photos)."""
    from cifar_pack.runtime.images import load_image

    from .helpers.samples import SAMPLES

    return np.stack([load_image(p) for p in SAMPLES])
