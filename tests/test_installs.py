"""The documented installs, each in a fresh virtual environment, as a new user would run them.

- runtime only, ``pip install .``: predict/info/evaluate of an .onnx work without TensorFlow;
  every command that needs the training packages says in one line which extra to install.
- GPU, the recipe in docs/usage.md#gpu: onnxruntime-gpu's ``get_available_providers()`` lists
  CUDAExecutionProvider (checkable without a GPU). With CUDA hidden (``CUDA_VISIBLE_DEVICES=""``
  forces the no-GPU path on any machine), ``--device auto`` runs on the CPU with one plain line
  and ``--device cuda`` is a one-line error; a half-removed onnxruntime is named, with its repair.

pip's download cache (~/.cache/pip) keeps reruns fast; the first run downloads about 300 MB.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import assert_one_line_error, write_class_folders
from .helpers.samples import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "cifar_pack" / "pretrained" / "cifar10.onnx"
pytestmark = [pytest.mark.slow, pytest.mark.install]


def gpu_recipe() -> list[list[str]]:
    """The pip commands of docs/usage.md's GPU block, as argument lists, "." being this checkout."""
    text = (ROOT / "docs" / "usage.md").read_text()
    block = re.search(r"### GPU\n\n```bash\n(.*?)```", text, flags=re.S).group(1)
    commands = [shlex.split(line) for line in block.splitlines() if line.startswith("pip ")]
    return [[a.replace(".[", f"{ROOT}[") if a.startswith(".[") else a for a in c[1:]] for c in commands]


def _venv(path: Path, *pip_args: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    _pip(path, "install", *pip_args)
    return path


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _run(venv: Path, *args, env: dict | None = None, cwd: Path) -> subprocess.CompletedProcess:
    """``cifar-pack ARGS`` from the venv, in ``cwd`` (not the checkout, so nothing leaks in)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / "cifar-pack"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean | (env or {}),
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    return _venv(tmp_path_factory.mktemp("venv") / "runtime", str(ROOT))


@pytest.fixture(scope="module")
def gpu_venv(tmp_path_factory) -> Path:
    recipe = gpu_recipe()
    assert recipe[0] == ["install", f"{ROOT}[gpu]"] and len(recipe) == 2, recipe
    venv = tmp_path_factory.mktemp("venv") / "gpu"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    for args in recipe:
        _pip(venv, *args)
    return venv


def test_runtime_install_predicts_without_tensorflow(runtime_venv, tmp_path):
    python = runtime_venv / "bin" / "python"
    probe = (
        "import importlib.util as u; print([m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx') if u.find_spec(m)])"
    )
    assert subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"

    proc = _run(runtime_venv, "predict", SAMPLE_DIR, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == 20 and sum(r["label"] == Path(r["path"]).name.split("_")[0] for r in results) >= 16

    proc = _run(runtime_venv, "info", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metadata"]["class_names"][0] == "airplane"

    data = tmp_path / "data"  # the quick-start photos as class folders: test/<class>/<file>.jpg
    for photo in SAMPLE_DIR.glob("*.jpg"):
        (data / "test" / photo.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        (data / "test" / photo.name.split("_")[0] / photo.name).write_bytes(photo.read_bytes())
    proc = _run(runtime_venv, "evaluate", "--model", BUNDLED, "--data", data, "--split", "test", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["samples"] == 20 and report["accuracy"] >= 0.8


def test_installed_package_is_typed_and_ships_its_page(runtime_venv, tmp_path):
    """py.typed (PEP 561) and the page's files are in the installed package, not only in the checkout."""
    probe = "import cifar_pack, pathlib; print(pathlib.Path(cifar_pack.__file__).parent)"
    python = runtime_venv / "bin" / "python"
    proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    root = Path(proc.stdout.strip())
    assert ROOT not in root.parents, root  # the installed copy, not this checkout
    assert (root / "py.typed").is_file()
    assert {p.name for p in (root / "serve" / "page").iterdir()} >= {"index.html", "app.mjs", "preprocess.mjs"}


@pytest.mark.parametrize(
    "args,extra",
    [
        (["train", "--data", "{data}", "--epochs", "1"], "train"),
        (["export", "--model", "{keras}"], "train"),
        (["export", "--int8", "--model", str(BUNDLED), "--data", "{data}"], "train"),
        (["benchmark", "--model", "{keras}", "--data", "{data}"], "train"),
        (["preview-augment", "--data", "{data}"], "train"),
        (["evaluate", "--model", "{keras}", "--data", "{data}"], "train"),
        (["serve", "--port", "0"], "serve"),
    ],
    ids=lambda a: " ".join(a[:2]) if isinstance(a, list) else a,
)
def test_runtime_install_names_the_missing_extra(runtime_venv, tmp_path, args, extra):
    data = write_class_folders(tmp_path / "data", {"train": 4})
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: never opened without keras
    args = [a.format(data=data, keras=keras_file) for a in args]
    proc = _run(runtime_venv, *args, cwd=tmp_path)
    assert_one_line_error(proc, f"pip install 'cifar-pack[{extra}]'", f"cifar-pack {args[0]}", code=1)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_gpu_recipe_lists_cuda_and_falls_back_plainly(gpu_venv, tmp_path):
    python = gpu_venv / "bin" / "python"
    providers = subprocess.run(
        [python, "-c", "import onnxruntime as o; print(o.get_available_providers())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "CUDAExecutionProvider" in providers

    no_gpu = {"CUDA_VISIBLE_DEVICES": ""}
    proc = _run(gpu_venv, "predict", SAMPLE_DIR / "cat_1444.jpg", env=no_gpu, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "CUDAExecutionProvider" in line]
    assert len(notes) == 1 and "running on the CPU" in notes[0], proc.stderr
    assert "on cpu" in proc.stderr

    proc = _run(gpu_venv, "predict", SAMPLE_DIR / "cat_1444.jpg", "--device", "cuda", env=no_gpu, cwd=tmp_path)
    assert_one_line_error(proc, "--device cuda", "CUDAExecutionProvider failed to initialise", code=2)
    assert "\x1b[" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_half_removed_onnxruntime_is_named_with_its_repair(gpu_venv, tmp_path):
    # The trap the old docs walked into: both wheels installed, then one uninstalled.
    _pip(gpu_venv, "uninstall", "-y", "onnxruntime")
    proc = _run(gpu_venv, "predict", SAMPLE_DIR / "cat_1444.jpg", cwd=tmp_path)
    assert_one_line_error(proc, "onnxruntime", "is incomplete", "pip install --force-reinstall --no-deps", code=1)
    _pip(gpu_venv, *gpu_recipe()[1])  # the repair the message gives: the recipe's second line
    assert _run(gpu_venv, "predict", SAMPLE_DIR / "cat_1444.jpg", cwd=tmp_path).returncode == 0
