"""docs/usage.md's commands and its Python example, run in order as written, on small real data.

The reader's files are made here: `../shared/data/cifar10-train-jpeg.tar.gz` is replaced by a small
archive of the same layout (10 CIFAR-10 classes x 8 images), `cifar-10-python.tar.gz` is a small
official python release, `my_photos/`, `photos/`, `more/`, `cat.png` and `other.h5` are written
or copied from the quick-start samples. Skipped on purpose, with reasons: the two-host TF_CONFIG
example (a second machine), the GPU installs (tests/test_installs.py runs that recipe), and `serve`
(runs until stopped; tests/test_serve.py). `predict --device cuda` must fail as the text says.
"""

from __future__ import annotations

import colorsys
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime import data
from cifar_pack.runtime.config import CIFAR10_CLASSES
from cifar_pack.runtime.records import TrainingRecord

from .conftest import make_images, run_cli
from .cpu_emulation import emulated_probabilities, qemu_unavailable_reason
from .helpers.releases import release_arrays, write_python_release

ROOT = Path(__file__).resolve().parents[1]
SHARED = "../shared/data/cifar10-train-jpeg.tar.gz"
needs_qemu = pytest.mark.skipif(
    qemu_unavailable_reason() is not None, reason=f"int8 kernels not forced: {qemu_unavailable_reason()}"
)
EXPECTED_FAILURES = {"--device cuda": "not available"}  # the doc says: strict, an error without CUDA


def _blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "usage.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _class_folders(root: Path, per_class: int) -> Path:
    # Ten hues 36 degrees apart, alternately bright and dark: classes a small model tells apart with
    # confidence. (With close colours its top two probabilities were within 0.01 on some images, and
    # the int8 gate, on 10 validation images, then passed or failed on one image's rounding.)
    for i, name in enumerate(CIFAR10_CLASSES):
        rgb = colorsys.hsv_to_rgb(i / 10, 1.0, 1.0 if i % 2 == 0 else 0.6)
        colour = tuple(round(255 * c) for c in rgb)
        (root / name).mkdir(parents=True, exist_ok=True)
        for j, img in enumerate(make_images(per_class, colour, 50 + i)):
            Image.fromarray(img).save(root / name / f"{j}.jpg", quality=90)
    return root


def _scratch(tmp_path: Path) -> Path:
    """The files the doc's commands name, in a working folder (cwd) with ../shared beside it."""
    work = tmp_path / "work"
    samples = ROOT / "artifacts" / "samples"
    shutil.copytree(samples, work / "photos")
    (work / "more").mkdir()
    for photo in sorted(samples.glob("*.jpg"))[:3]:
        shutil.copy(photo, work / "more" / photo.name)
    Image.open(samples / "cat_1353.jpg").save(work / "cat.png")
    shutil.copy(samples / "dog_0638.jpg", work / "dog.jpg")
    _class_folders(work / "my_photos", 4)
    archive = tmp_path / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(_class_folders(tmp_path / "train_src" / "train", 8), arcname="train")
    write_python_release(tmp_path / "release", release_arrays(8, 1), as_tar=True)
    shutil.copy(tmp_path / "release" / "cifar-10-python.tar.gz", work / "cifar-10-python.tar.gz")
    import keras

    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(pooled)).save(work / "other.h5")
    return work


def _run_bash_blocks(work: Path) -> int:
    ran = 0
    for block in _blocks("bash"):
        for line in block.splitlines():
            command = re.split(r"\s+#\s", line)[0].strip()  # drop the trailing comment
            if not command.startswith("cifar-pack "):
                continue  # the GPU block's pip lines
            if command.startswith("cifar-pack benchmark --model runs/x/"):
                (work / "runs" / "x").mkdir(parents=True, exist_ok=True)  # "a run of yours": the first one
                for name in ("model.keras", "manifest.json", "history.json"):
                    shutil.copy(work / "artifacts" / name, work / "runs" / "x" / name)
            proc = run_cli(*shlex.split(command)[1:], cwd=work, timeout=900)
            expected = next((why for flag, why in EXPECTED_FAILURES.items() if flag in command), None)
            if expected:
                assert proc.returncode != 0 and expected in proc.stderr, (command, proc.stderr[-1000:])
            else:
                assert proc.returncode == 0, (command, proc.stderr[-2000:])
            ran += 1
    return ran


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory) -> tuple[Path, int]:
    """The doc's commands, run once in order in a scratch folder: (that folder, commands run)."""
    work = _scratch(tmp_path_factory.mktemp("usage"))
    return work, _run_bash_blocks(work)


@pytest.mark.slow
def test_every_usage_command_and_the_python_example_run_as_written(docs_run):
    work, ran = docs_run
    assert ran >= 20
    assert (work / "runs" / "seed" / "model.keras").exists() and (work / "preview.png").exists()
    assert (work / "artifacts" / "model.int8.onnx").exists() and (work / "MODEL_CARD.md").exists()
    # The Python API example, with the names it leaves to the reader defined first.
    setup = (
        "import numpy as np\nfrom PIL import Image\n"
        "pil_image = Image.open('cat.png')\nhwc_array = np.asarray(Image.open('dog.jpg'))\n"
        "batch = np.zeros((4, 32, 32, 3), np.uint8)\n"
    )
    (example,) = _blocks("python")
    proc = subprocess.run(
        [sys.executable, "-c", setup + example], cwd=work, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@needs_qemu
@pytest.mark.slow
def test_the_docs_int8_step_passes_its_gate_on_both_int8_kernel_families(docs_run, monkeypatch):
    """`export --onnx --int8` gated the doc's tiny model on this CPU's int8 kernels; the same files,
    run under each emulated kernel family, pass the same gate on the same validation images. On 10
    images the gate allows one image (quantize.allowed_drop): a near-tie may flip on one family."""
    import json

    monkeypatch.chdir(docs_run[0])  # where the doc's commands ran: the record's data path is relative to it
    work = docs_run[0] / "artifacts"
    report = json.loads((work / "model.int8.onnx.json").read_text())["quantization"]
    record = TrainingRecord.from_metadata(json.loads((work / "model.onnx.json").read_text()).get("training"))
    x_all, y_all = data.load(record.data_location).split("train")
    val = data.stratified_split(y_all, *record.split)[1]
    x, y = x_all[val], y_all[val]
    for kernels in ("avx2", "exact-int32"):
        acc32 = np.mean(emulated_probabilities(work / "model.onnx", x, kernels).argmax(1) == y)
        acc8 = np.mean(emulated_probabilities(work / "model.int8.onnx", x, kernels).argmax(1) == y)
        drop = 100 * (acc32 - acc8)
        print(f"{kernels}: float32 {acc32:.3f}, int8 {acc8:.3f} on {len(y)} images")
        assert drop <= report["allowed_drop_points"] + 1e-9, (kernels, acc32, acc8)
