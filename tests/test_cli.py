"""The command line as a user meets it: help, --json everywhere, info, preview-augment, --debug."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from .conftest import assert_one_line_error, run_cli

COMMANDS = ["train", "preview-augment", "export", "info", "predict", "evaluate", "benchmark"]


def test_help_lists_every_command():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_takes_json(name):
    proc = run_cli(name, "--help")
    assert proc.returncode == 0 and "--json" in proc.stdout


def test_info_json(exported):
    proc = run_cli("info", exported, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert set(info) == {"path", "inputs", "outputs", "engine", "advice", "metadata"}
    assert info["engine"]["engine"] == "onnxruntime" and info["engine"]["precision"] == "f32"
    assert info["metadata"]["graph"]["nodes_written"] < info["metadata"]["graph"]["nodes_converted"]
    assert info["inputs"] == [{"name": "images", "type": "tensor(uint8)", "shape": ["N", 32, 32, 3]}]
    assert info["metadata"]["class_names"] == ["blue", "green", "red"]
    text = run_cli("info", exported)
    assert "input: images tensor(uint8)" in text.stdout and "class_names" in text.stdout


@pytest.mark.slow
def test_preview_augment_writes_a_grid(tiny_data, tmp_path):
    out = tmp_path / "grid.png"
    proc = run_cli(
        "preview-augment",
        "--data",
        tiny_data,
        "-o",
        out,
        "--recipe",
        "seed",
        "--images",
        "3",
        "--variants",
        "4",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["preview"] == str(out)
    img = Image.open(out)
    assert img.size == (5 * 132 + 4, 3 * 132 + 4)  # (1 original + 4 copies) x 3 rows of 128px cells


def test_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "missing.onnx"
    assert_one_line_error(run_cli("info", missing), "missing.onnx", code=1)
    proc = run_cli("--debug", "info", missing)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_shows_true_defaults_and_no_noise():
    """`--onnx` showed `[default: True]`; `--max-pixels` read "pixels ." and hid 50 MP. (Usage errors
    are one line: tests/test_hostile.py, with the other ways in.)"""
    from cifar_pack import __version__

    assert run_cli("--version").stdout.strip() == f"cifar-pack {__version__}"
    train_help = " ".join(run_cli("train", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert re.search(r"\[default: \(?1337\)?\]", train_help) and re.search(r"\[default: \(?0\.2\)?\]", train_help)
    export_help = " ".join(run_cli("export", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "default: True" not in export_help and "--onnx" in export_help
    predict_help = " ".join(run_cli("predict", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "50,000,000" in predict_help and "pixels ." not in predict_help
    # Rich reads "[openvino]" as markup and drops it unless escaped: "(the  extra; same file)".
    info_help = " ".join(run_cli("info", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert "(the [openvino] extra; same file)" in predict_help and "(the [openvino] extra" in info_help
