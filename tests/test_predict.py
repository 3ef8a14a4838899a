"""The runtime: Predictor API, the import rule, provider choice, bad inputs, the CLI's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from PIL import Image

from cifar_pack.runtime.errors import InputError, ModelError, UsageError
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor
from cifar_pack.runtime.providers import choose_providers

from .conftest import COLOURS, FLOAT32_REORDER_ATOL, assert_one_line_error, make_images, run_cli


@pytest.fixture(scope="module")
def predictor(exported):
    return Predictor(exported, device="cpu")


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory):
    """One 64x48 JPEG per class, bigger than 32x32 so the resize path runs."""
    root = tmp_path_factory.mktemp("samples")
    paths = {}
    for i, (name, colour) in enumerate(COLOURS.items()):
        img = Image.fromarray(make_images(1, colour, 100 + i)[0]).resize((64, 48))
        paths[name] = root / f"{name}.jpg"
        img.save(paths[name], quality=95)
    return paths


def test_predicts_paths_pil_and_arrays_alike(predictor, sample_files):
    path = sample_files["red"]
    by_path = predictor.predict(path, top_k=3)[0]
    by_pil = predictor.predict(Image.open(path), top_k=3)[0]
    by_array = predictor.predict(np.asarray(Image.open(path)), top_k=3)[0]
    assert by_path == by_pil == by_array
    assert set(by_path) == {"label", "index", "probability", "top_k"}
    assert by_path["label"] == "red" and predictor.class_names[by_path["index"]] == "red"
    assert [t["probability"] for t in by_path["top_k"]] == sorted(
        (t["probability"] for t in by_path["top_k"]), reverse=True
    )
    assert sum(t["probability"] for t in by_path["top_k"]) == pytest.approx(1.0, abs=1e-5)


def test_batch_array_and_predict_proba(predictor):
    batch = np.concatenate([make_images(4, c, 7) for c in COLOURS.values()])  # (12, 32, 32, 3)
    probs = predictor.predict_proba(batch)
    assert probs.shape == (12, 3) and probs.dtype == np.float32
    labels = [r["label"] for r in predictor.predict(batch)]
    assert labels == [predictor.class_names[i] for i in probs.argmax(1)]
    assert labels.count("blue") >= 3 and labels.count("red") >= 3  # a trained model, not chance
    with pytest.raises(InputError, match="uint8"):
        predictor.predict_proba(batch.astype(np.float32))


def test_class_names_fall_back_to_sidecar_then_indices(exported, tmp_path, caplog):
    model = onnx.load(exported)
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, bare)
    sidecar = json.loads((exported.parent / f"{exported.name}.json").read_text())
    # A sidecar naming another file's sha256 (left from another export) is not trusted ...
    (tmp_path / "bare.onnx.json").write_text(json.dumps(sidecar))
    assert Predictor(bare).class_names == ["0", "1", "2"]
    # ... one naming this file's, or none (written by hand or another tool), is.
    from cifar_pack.runtime.fileio import sha256_file

    (tmp_path / "bare.onnx.json").write_text(json.dumps(sidecar | {"model_sha256": sha256_file(bare)}))
    assert Predictor(bare).class_names == ["blue", "green", "red"]
    del sidecar["model_sha256"]
    (tmp_path / "bare.onnx.json").write_text(json.dumps(sidecar))
    assert Predictor(bare).class_names == ["blue", "green", "red"]
    (tmp_path / "bare.onnx.json").unlink()
    with caplog.at_level("WARNING"):
        assert Predictor(bare).class_names == ["0", "1", "2"]
    assert "no class names" in caplog.text


def test_provider_selection():
    cpu = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("auto", cpu) == cpu
    assert choose_providers("auto", gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda", gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cpu", gpu) == cpu
    assert choose_providers("auto", ["CoreMLExecutionProvider", *cpu])[0] == "CoreMLExecutionProvider"
    with pytest.raises(UsageError, match="CUDAExecutionProvider is not available"):
        choose_providers("cuda", cpu)
    with pytest.raises(UsageError, match="unknown"):
        choose_providers("tpu", cpu)


def test_devices_report_what_the_session_runs_on(exported):
    from cifar_pack.runtime.providers import DEVICE_PROVIDERS

    assert Predictor(exported, device="cpu").device == "cpu"  # forced: the same on every machine
    p = Predictor(exported)  # auto: whatever it picked, it says so truthfully
    assert DEVICE_PROVIDERS[p.device] == p.backend.provider
    # An int8 file says its layers run int8 ("(onnxruntime, f32)" read as "not int8").
    assert Predictor(exported, device="cpu").runs_on() == "cpu (onnxruntime, f32)"
    assert (
        Predictor(BUNDLED_MODEL.with_name("cifar10.int8.onnx"), device="cpu").runs_on()
        == "cpu (onnxruntime, int8 + f32)"
    )


def test_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model"):
        Predictor(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        Predictor(junk)
    # A valid ONNX model with the wrong input: float32 [N, 3, 32, 32].
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 32, 32])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    wrong = tmp_path / "wrong.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), wrong)
    with pytest.raises(ModelError, match="uint8"):
        Predictor(wrong)


def test_predict_path_never_imports_tensorflow(exported, sample_files):
    """As typer does for its own import rules: a fresh interpreter, then look at sys.modules."""
    script = f"""
import sys, json
from cifar_pack import Predictor
r = Predictor({str(exported)!r}).predict({str(sample_files["blue"])!r})
sys.argv = ["cifar-pack", "predict", {str(sample_files["green"])!r}, "--model", {str(exported)!r}, "--json"]
from cifar_pack.cli import main
try:
    main()
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"tensorflow", "keras", "tf2onnx", "tf_keras"}})
print("HEAVY", json.dumps(heavy), r[0]["label"], file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY [] blue" in proc.stderr
    assert json.loads(proc.stdout)[0]["label"] == "green"


def test_cli_bad_inputs_do_not_stop_good_ones(exported, sample_files, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(sample_files["red"].read_bytes()[:200])
    inputs = [sample_files["blue"], empty, text, truncated, tmp_path / "missing.png", sample_files["red"]]
    proc = run_cli("predict", *inputs, "--model", exported, "--json", "--top-k", "2")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    results = json.loads(proc.stdout)
    assert [r["path"] for r in results] == [str(p) for p in inputs]
    good = [r for r in results if "error" not in r]
    assert [r["label"] for r in good] == ["blue", "red"]
    for r in good:
        assert set(r) == {"path", "label", "index", "probability", "top_k"} and len(r["top_k"]) == 2
        assert set(r["top_k"][0]) == {"label", "index", "probability"}
    bad = [r for r in results if "error" in r]
    assert len(bad) == 4 and all(set(r) == {"path", "error"} and r["path"] in r["error"] for r in bad)
    for p in (empty, text, truncated, tmp_path / "missing.png"):
        assert f"error: {p}" in proc.stderr


def test_cli_text_output_directories_and_exit_zero(exported, sample_files):
    folder = sample_files["red"].parent
    proc = run_cli("predict", folder, "--model", exported)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.count("\t") == 2 for line in lines)
    assert f"model: {exported}" in proc.stderr


def test_cli_model_and_device_errors(exported, sample_files, tmp_path):
    assert_one_line_error(
        run_cli("predict", sample_files["red"], "--model", tmp_path / "none.onnx"), "none.onnx", code=1
    )
    # DirectML exists only in Windows builds of onnxruntime: unavailable on every machine CI runs on.
    proc = run_cli("predict", sample_files["red"], "--model", exported, "--device", "dml")
    assert_one_line_error(proc, "--device dml", "DmlExecutionProvider is not available", code=2)
    # Bad data, not a bad option: exit 1, as for any input that fails (docs/usage.md).
    proc = run_cli("predict", tmp_path / "nothing*.png", "--model", exported)
    assert_one_line_error(proc, "nothing*.png", "pattern matches no image file", code=1)


def test_a_keras_file_or_an_image_as_model_gets_told_what_to_do(trained_run, sample_files):
    """onnxruntime's INVALID_PROTOBUF said nothing useful."""
    keras_file = trained_run / "model.keras"
    proc = run_cli("predict", sample_files["red"], "--model", keras_file)
    assert_one_line_error(proc, "a Keras model", f"cifar-pack export --onnx --model {keras_file}", code=1)
    assert "INVALID_PROTOBUF" not in proc.stderr
    proc = run_cli("predict", sample_files["red"], "--model", sample_files["red"])
    assert_one_line_error(proc, "an image, not a model", code=1)


# ---------------------------------------------------------------------------------------------
# Streaming predict: results files, input order, constant memory


def test_output_files_hold_every_result_in_order(tmp_path, sample_files):
    inputs = [sample_files["red"], tmp_path / "missing.png", sample_files["blue"], f"{tmp_path}/none/*.jpg"]
    json_proc = run_cli("predict", *inputs, "--json", "--top-k", "2")
    assert json_proc.returncode == 1  # two inputs failed: still every result, in input order
    expected = json.loads(json_proc.stdout)
    assert [("error" in r) for r in expected] == [False, True, False, True]

    jsonl = tmp_path / "out.jsonl"
    proc = run_cli("predict", *inputs, "--top-k", "2", "--output", jsonl)
    assert proc.returncode == 1 and proc.stdout == "" and f"wrote 4 results to {jsonl}" in proc.stderr
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == expected

    csv_path = tmp_path / "out.csv"
    assert run_cli("predict", *inputs, "--top-k", "2", "--output", csv_path).returncode == 1
    rows = list(__import__("csv").reader(csv_path.open()))
    assert rows[0] == ["path", "label", "probability", "label_2", "probability_2", "error"]
    assert rows[1][:2] == [expected[0]["path"], expected[0]["label"]] and rows[1][-1] == ""
    assert float(rows[1][2]) == pytest.approx(expected[0]["probability"], abs=FLOAT32_REORDER_ATOL)
    assert rows[1][3] == expected[0]["top_k"][1]["label"] and rows[2][-1] == expected[1]["error"]
    assert len(rows) == 5


def test_output_refuses_what_it_cannot_do_before_any_work(tmp_path, sample_files):
    existing = tmp_path / "out.jsonl"
    existing.write_text("old\n")
    assert_one_line_error(run_cli("predict", sample_files["red"], "-o", existing), "exists", "--overwrite", code=2)
    assert existing.read_text() == "old\n"
    assert run_cli("predict", sample_files["red"], "-o", existing, "--overwrite").returncode == 0
    assert json.loads(existing.read_text())["path"] == str(sample_files["red"])
    bad = run_cli("predict", sample_files["red"], "-o", tmp_path / "out.txt")
    assert_one_line_error(bad, "--output", ".jsonl or .csv", code=2)
    both = run_cli("predict", sample_files["red"], "-o", tmp_path / "x.jsonl", "--json")
    assert_one_line_error(both, "--output and --json", code=2)


@pytest.mark.slow
def test_a_killed_run_never_leaves_a_results_file_that_looks_complete(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    Image.fromarray(make_images(1, (30, 40, 220), 5)[0]).save(folder / "0.png")
    for i in range(1, 20_000):
        os.link(folder / "0.png", folder / f"{i}.png")
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "cifar_pack", "predict", folder, "-o", out], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the temporary file beside the target: the run is writing
    proc.kill()
    proc.wait(timeout=60)
    assert not out.exists()  # only the temporary file, named so that no reader takes it for the results
    done = run_cli("predict", folder / "0.png", "-o", out)  # the next run cleans it up
    assert done.returncode == 0 and out.exists() and not list(tmp_path.glob(".out.*.jsonl"))


def _peak_rss_mb(*args: str) -> float:
    """Peak RSS of `cifar-pack ARGS` run in a fresh interpreter (its own, not the test's)."""
    probe = (
        "import resource, sys\nfrom cifar_pack.cli import main\nsys.argv = ['cifar-pack', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600
    )
    return float(proc.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """2,000 and 20,000 images (hard links of one PNG) in every output mode: the same peak, give or take."""
    small, large = tmp_path / "small", tmp_path / "large"
    for folder, count in ((small, 2_000), (large, 20_000)):
        folder.mkdir()
        Image.fromarray(make_images(1, (220, 30, 40), 6)[0]).save(folder / "0.png")
        for i in range(1, count):
            os.link(folder / "0.png", folder / f"{i:05d}.png")
    for mode in ([], ["--json"], ["--output", str(tmp_path / "o.jsonl"), "--overwrite"]):
        rss_small = _peak_rss_mb("predict", str(small), *mode)
        rss_large = _peak_rss_mb("predict", str(large), *mode)
        # Keeping every result (as before) grew by ~2 KB an image: 36 MB over these 18,000 more.
        assert rss_large <= rss_small + 15, (mode, rss_small, rss_large)


def test_two_runs_writing_one_output_the_second_is_refused_and_the_first_finishes(tmp_path):
    """The second run's stale-temp clean-up deleted the first run's live temp file: the first then
    died after its work with a FileNotFoundError traceback."""
    from .helpers.samples import SAMPLES

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3000):  # enough that the first run is still writing when the second starts
        (images / f"{i:04d}.jpg").write_bytes(SAMPLES[i % len(SAMPLES)].read_bytes())
    out = tmp_path / "same.csv"
    cmd = [sys.executable, "-m", "cifar_pack", "predict", str(images), "--output", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".same.*.csv")):  # the first run's temporary file: it is writing
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.02)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "another cifar-pack run is writing it now" in second.stderr, second.stderr
    assert [line.startswith("error:") for line in second.stderr.splitlines()].count(True) == 1
    assert "Traceback" not in second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0 and "Traceback" not in err, err
    assert len(out.read_text().splitlines()) == 3001  # a header and every image
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "same.csv"]  # no lock or temp left
