"""The seed CNN, the recipes, a real training run, resume after kill and Ctrl-C, option errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cifar_pack.training.config import RECIPES, SEED_RECIPE

from .conftest import assert_one_line_error, run_cli, write_class_folders


def test_seed_cnn_has_the_notebooks_parameter_count():
    from cifar_pack.training.architectures import build_model

    model = build_model(10)
    assert model.count_params() == 2_168_362
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Rescaling",
        "Conv2D",
        "Conv2D",
        "MaxPooling2D",
        "Dropout",
        "Conv2D",
        "Conv2D",
        "MaxPooling2D",
        "Dropout",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
        "Activation",
    ]
    assert [layer.rate for layer in model.layers if kinds[model.layers.index(layer)] == "Dropout"] == [0.25, 0.25, 0.5]
    assert model.layers[0].scale == pytest.approx(1 / 255)
    assert build_model(3).count_params() == 2_168_362 - 7 * 513


def test_seed_recipe_is_the_notebook():
    r = SEED_RECIPE
    assert (r.optimizer, r.learning_rate, r.batch_size, r.epochs, r.schedule) == ("rmsprop", 1e-3, 128, 20, "constant")
    a = r.augment
    assert (a.rotation_degrees, a.width_shift, a.height_shift, a.zoom, a.horizontal_flip, a.fill_mode) == (
        40,
        0.2,
        0.2,
        0.2,
        True,
        "nearest",
    )


def test_seed_augmentation_layers_and_not_in_the_model():
    import keras

    from cifar_pack.training.pipeline import make_augmenter

    augment = make_augmenter(SEED_RECIPE)
    names = [type(layer).__name__ for layer in augment.layers]
    assert names == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]
    assert augment.layers[1].factor == (-40 / 360, 40 / 360) or augment.layers[1].factor == pytest.approx(40 / 360)
    from cifar_pack.training.architectures import build_model

    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in build_model().layers)


def test_training_run_writes_every_file(trained_run):
    for name in ("model.keras", "last.keras", "history.json", "curves.png", "manifest.json", "train_state.json"):
        assert (trained_run / name).stat().st_size > 0, name
    history = json.loads((trained_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert manifest["class_names"] == ["blue", "green", "red"]
    assert manifest["data"]["sha256"] and manifest["data"]["validation_split"] == 0.2
    assert manifest["versions"]["keras"].startswith("3.")
    runtime = manifest["tensorflow"]  # what TensorFlow computed with (tests/test_tf_setup.py forces each case)
    assert isinstance(runtime["onednn"], bool) and runtime["onednn_setting"]["variable"] == "TF_ENABLE_ONEDNN_OPTS"
    best = max(history, key=lambda h: h["val_accuracy"])
    assert manifest["metrics"]["best_val_accuracy"] == best["val_accuracy"]
    assert manifest["metrics"]["test_accuracy"] is not None  # the source has a test split
    assert best["val_accuracy"] > 0.5  # three well-separated colours: learnable in 3 epochs


def test_checkpoint_is_the_best_epoch(trained_run):
    """model.keras holds the epoch with the highest val_accuracy, reproduced by evaluating it."""
    import keras
    import numpy as np

    from cifar_pack.runtime import data
    from cifar_pack.training.model import float32_copy

    manifest = json.loads((trained_run / "manifest.json").read_text())
    ds = data.load(manifest["data"]["path"])
    _, x_val, y_val = data.select(ds, "val", 0.2, manifest["config"]["seed"])
    model, _ = float32_copy(keras.models.load_model(trained_run / "model.keras"))
    acc = float(np.mean(model.predict(x_val, verbose=0).argmax(1) == y_val))
    assert acc == pytest.approx(manifest["metrics"]["best_val_accuracy"], abs=1.5 / len(y_val))


def _train_cmd(data, out, epochs):
    return [
        sys.executable,
        "-m",
        "cifar_pack",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "16",
        "--precision",
        "float32",
        "--json",
    ]


def _popen(cmd, **kwargs) -> subprocess.Popen:
    """Start a training process that Ctrl-C can reach, as in a terminal.

    A shell running us in the background may have set SIGINT to "ignored", which children
    inherit and Python then leaves alone; restore the default so SIGINT raises KeyboardInterrupt.
    """
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


def _wait_for_epochs(state_path, n, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if state_path.exists():
            try:
                if json.loads(state_path.read_text())["epochs_done"] >= n:
                    return
            except (ValueError, KeyError):
                pass  # never happens with atomic writes, but a test must not hang on it
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("training did not reach the epoch in time")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_resume_after_interruption_equals_the_uninterrupted_run(tmp_path, how):
    """Kill (or Ctrl-C) after an epoch, resume: the history is the uninterrupted run's, number for number.

    TF_DETERMINISTIC_OPS=1 removes TensorFlow's own run-to-run noise, so any difference left
    would be the resume's: data order, augmentation or dropout masks not continued exactly.
    """
    data_dir = write_class_folders(tmp_path / "d", {"train": 100})
    epochs, env = 12, {**os.environ, "TF_DETERMINISTIC_OPS": "1"}
    baseline = subprocess.run(_train_cmd(data_dir, tmp_path / "full", epochs), capture_output=True, text=True, env=env)
    assert baseline.returncode == 0, baseline.stderr[-2000:]

    out = tmp_path / "run"
    proc = _popen(_train_cmd(data_dir, out, epochs), env=env)
    _wait_for_epochs(out / "train_state.json", 2, proc)
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    state = json.loads((out / "train_state.json").read_text())
    assert 2 <= state["epochs_done"] < epochs and not state["complete"]
    assert (out / "model.keras").exists()
    if how == "ctrl-c":
        assert proc.returncode == 130
        assert "--resume" in stderr and "Traceback" not in stderr
        # Said at once, and the message names the epoch --resume continues after.
        assert "stopping after this batch" in stderr
        assert f"interrupted after epoch {state['epochs_done']}/{epochs}" in stderr, stderr[-500:]

    resumed = run_cli("train", "--out", out, "--resume", "--json", env={"TF_DETERMINISTIC_OPS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    history = json.loads((out / "history.json").read_text())
    expected = json.loads((tmp_path / "full" / "history.json").read_text())
    assert summary["epochs"] == epochs and [h["epoch"] for h in history] == list(range(1, epochs + 1))
    for got, want in zip(history, expected):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), (got["epoch"], key)
    assert set(summary) >= {"model", "epochs", "best_val_accuracy", "test_accuracy", "seconds", "history"}


@pytest.mark.slow
def test_resume_works_from_another_directory_and_refuses_changed_settings(tmp_path):
    write_class_folders(tmp_path / "d", {"train": 10})
    out = tmp_path / "run"
    proc = _popen(_train_cmd("d", out, 40), cwd=tmp_path)  # the data path as typed: relative
    _wait_for_epochs(out / "train_state.json", 1, proc)
    proc.kill()
    proc.communicate(timeout=60)
    for option in (["--epochs", "7"], ["--lr", "0.5"], ["--data", "/nonexistent"], ["--precision", "mixed_bfloat16"]):
        assert_one_line_error(run_cli("train", "--out", out, "--resume", *option), option[0], "cannot change", code=2)
    # A longer run would stretch the one-cycle schedule: refused with that reason.
    longer = run_cli("train", "--out", out, "--resume", "--epochs", "41")
    assert_one_line_error(longer, "--epochs 41", "laid out over 40 epochs", code=2)
    # Stale temp files of a killed write are ours by name and go at the next run.
    (out / ".last.abc123.keras").write_bytes(b"half")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The first command plus --resume (same values, the data path now absolute) is accepted.
    same = ("--data", tmp_path / "d", "--epochs", "40", "--batch-size", "16", "--precision", "float32")
    resumed = run_cli("train", *same, "--out", out, "--resume", "--json", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not (out / ".last.abc123.keras").exists()


def test_corrupt_run_files_are_one_line_errors(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_state.json").write_text("{}")
    assert_one_line_error(run_cli("train", "--out", run, "--resume"), "not a cifar-pack run state", code=2)
    state = {"config": {}, "data": {}, "epochs_done": 2, "history": [], "last_sha256": "0" * 64}
    (run / "train_state.json").write_text(json.dumps(state))
    (run / "last.keras").write_bytes(b"PK\x03\x04truncated")
    assert_one_line_error(run_cli("train", "--out", run, "--resume"), "no checkpoint", "matches", code=2)
    afile = tmp_path / "afile"
    afile.write_text("x")
    data_dir = write_class_folders(tmp_path / "d", {"train": 2})
    assert_one_line_error(run_cli("train", "--data", data_dir, "--out", afile), "--out", "is a file", code=2)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    data_dir = write_class_folders(tmp_path / "d", {"train": 10})
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cifar_pack.training.config import RECIPES
from cifar_pack.training.pipeline import make_strategy
from cifar_pack.training.train import train
assert make_strategy("mirrored").num_replicas_in_sync == 2
r = train({str(data_dir)!r}, {str(tmp_path / "out")!r}, RECIPES["default"].with_overrides(
    epochs=1, batch_size=8, strategy="mirrored", precision="float32"))
print("EPOCHS", r.epochs)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "EPOCHS 1" in proc.stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--epochs", "0"], "--epochs"),
        (["--validation-split", "1.5"], "--validation-split"),
        (["--validation-split", "0"], "--validation-split"),
        (["--recipe", "turbo"], "--recipe"),
        (["--precision", "float8"], "--precision"),
        (["--strategy", "tpu"], "--strategy"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, args, fragment):
    proc = run_cli("train", "--data", tmp_path, "--out", tmp_path / "o", *args)
    assert_one_line_error(proc, fragment, code=2)


def test_resume_without_a_run_is_a_usage_error_before_tensorflow_starts(tmp_path):
    assert_one_line_error(run_cli("train", "--out", tmp_path, "--resume"), "--resume", code=2)
    probe = (
        "import sys\nfrom cifar_pack.cli import main\n"
        "sys.argv = ['cifar-pack', 'train', '--out', sys.argv[1], '--resume']\n"
        "try:\n    main()\nexcept SystemExit:\n    print('tensorflow' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stdout + proc.stderr  # answered without the 3-5 s import


def test_failed_data_leaves_no_run_folder(tmp_path):
    """Training on an empty folder left an empty --out behind."""
    (tmp_path / "empty").mkdir()
    proc = run_cli("train", "--data", tmp_path / "empty", "--out", tmp_path / "run", "--epochs", "1")
    assert_one_line_error(proc, "empty", code=1)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_constant_rate_run_can_be_continued_for_more_epochs(tmp_path):
    """The seed recipe's learning rate does not depend on the run's length: --resume --epochs N continues it."""
    data_dir = write_class_folders(tmp_path / "d", {"train": 10})
    out = tmp_path / "run"
    first = run_cli(
        "train", "--data", data_dir, "--out", out, "--recipe", "seed", "--epochs", "1", "--batch-size", "16",
        "--precision", "float32",  # forced: `auto` would choose by this machine's CPU
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    more = run_cli("train", "--out", out, "--resume", "--epochs", "2", "--json")
    assert more.returncode == 0, more.stderr[-2000:]
    assert "continuing to 2 epochs" in more.stderr and json.loads(more.stdout)["epochs"] == 2
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["epochs"] == 2
    # One definition of speed: the summary says what the manifest says.
    assert json.loads(more.stdout)["images_per_second"] == manifest["images_per_second"] > 0


def test_overrides_change_only_what_the_user_gave_and_survive_the_state_file():
    from dataclasses import asdict

    from cifar_pack.training.config import TrainConfig

    base = RECIPES["default"]
    changed = base.with_overrides(epochs=3, learning_rate=None, seed=0)
    diff = {k for k, v in asdict(changed).items() if asdict(base)[k] != v}
    assert diff == {"epochs", "seed"} and changed.seed == 0  # 0 is a value, None means "keep"
    assert TrainConfig.from_dict(json.loads(json.dumps(changed.to_dict()))) == changed
    assert SEED_RECIPE.with_overrides(batch_size=64).augment == SEED_RECIPE.augment


@pytest.mark.slow
def test_multi_worker_strategy_runs_as_one_worker_without_tf_config(tmp_path):
    """No TF_CONFIG: MultiWorkerMirroredStrategy is a cluster of one; the run must still complete."""
    data_dir = write_class_folders(tmp_path / "d", {"train": 10})
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cifar_pack",
            "train",
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "o"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--strategy",
            "multi-worker",
            "--precision",
            "float32",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["epochs"] == 1
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["strategy"] == "multi-worker"


ZEN4 = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]


@pytest.mark.parametrize(
    "flags,gpu,onednn,expected",
    [
        (["avx2", "fma"], False, True, "float32"),  # AMD Zen 3: TensorFlow would emulate bf16 at 0.14x
        (ZEN4, False, True, "mixed_bfloat16"),  # AMD Zen 4
        (["avx2", "avx512f", "amx_bf16"], False, True, "mixed_bfloat16"),  # Intel Sapphire Rapids
        (ZEN4, False, False, "float32"),  # TF_ENABLE_ONEDNN_OPTS=0: Eigen emulates bf16 even there
        (["avx2", "avx512f", "amx_bf16"], False, False, "float32"),
        (["avx2", "fma"], True, True, "mixed_bfloat16"),  # a GPU computes bf16 natively
        (["avx2", "fma"], True, False, "mixed_bfloat16"),
        ([], False, True, "float32"),  # ARM or an unreadable /proc/cpuinfo
    ],
)
def test_auto_precision_never_picks_an_emulated_bf16(flags, gpu, onednn, expected):
    from cifar_pack.training.pipeline import resolve_precision

    assert resolve_precision("auto", flags, gpu, onednn) == expected
    for forced in ("float32", "mixed_bfloat16"):
        assert resolve_precision(forced, flags, gpu, onednn) == forced  # an explicit choice is never second-guessed


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_multi_worker_training_on_two_real_workers(tmp_path):
    """Two processes, one TF_CONFIG cluster on localhost: both finish, only the chief writes the run."""
    data_dir = write_class_folders(tmp_path / "d", {"train": 12})
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        cmd = [sys.executable, "-m", "cifar_pack", "train", "--data", str(data_dir), "--out", str(tmp_path / "run")]
        cmd += ["--epochs", "1", "--batch-size", "8", "--strategy", "multi-worker", "--precision", "float32", "--json"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=300))
    finally:
        for proc in procs:
            proc.kill()
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-3000:]
        assert json.loads(stdout)["model"] == str(tmp_path / "run" / "model.keras")
    assert "the chief writes the run" in outputs[1][1] and "the chief writes" not in outputs[0][1]
    # One cluster, not two lone runs: metrics are all-reduced, so both workers log the same epoch.
    epoch_logs = [re.findall(r"epoch 1/1 .*val_acc [0-9.]+", err) for _, err in outputs]
    assert epoch_logs[0] and epoch_logs[0] == epoch_logs[1], epoch_logs
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "curves.png",
        "history.json",
        "last.keras",
        "manifest.json",
        "model.keras",
        "train_state.json",
    ]
    assert json.loads((run / "manifest.json").read_text())["strategy"] == "multi-worker"
    from cifar_pack.runtime.evaluation import evaluate
    from cifar_pack.training.model import keras_classifier

    report = evaluate(keras_classifier(run / "model.keras"), str(data_dir), split="train")
    assert report["samples"] == 36 and 0.0 <= report["accuracy"] <= 1.0


@pytest.mark.parametrize(
    "tf_config,chief",
    [
        (None, True),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}', True),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}', False),
        ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', False),
        ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', True),
    ],
)
def test_which_worker_is_chief(tf_config, chief):
    from cifar_pack.training.multi_worker import is_chief

    assert is_chief(tf_config) is chief


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_says_nothing_was_saved(tmp_path):
    data_dir = write_class_folders(tmp_path / "d", {"train": 200})
    out = tmp_path / "run"
    proc = _popen(_train_cmd(data_dir, out, 5))
    stderr = ""
    while "data: " not in stderr:  # the data is loaded; the first epoch (with tracing) takes seconds
        line = proc.stderr.readline()
        assert line, proc.communicate()
        stderr += line
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in rest, rest
    assert "nothing was saved" in rest and not (out / "train_state.json").exists()


def test_resume_finds_the_checkpoint_its_state_names_whatever_the_kill_left(tmp_path):
    """A kill between checkpoint and state: the state names its checkpoint by sha256."""
    from cifar_pack.runtime.fileio import sha256_file
    from cifar_pack.training.run_state import read_state as _read_state

    run = tmp_path / "run"
    run.mkdir()
    (run / "last.prev.keras").write_bytes(b"epoch 3 checkpoint")  # what the state recorded
    (run / "last.keras").write_bytes(b"epoch 4 checkpoint, state not yet written")
    state = {
        "config": {},
        "data": {},
        "epochs_done": 3,
        "history": [],
        "last_sha256": sha256_file(run / "last.prev.keras"),
    }
    (run / "train_state.json").write_text(json.dumps(state))
    assert _read_state(run)[1] == run / "last.prev.keras"
    state["last_sha256"] = sha256_file(run / "last.keras")  # the state moved on: the new file
    (run / "train_state.json").write_text(json.dumps(state))
    assert _read_state(run)[1] == run / "last.keras"
    state["epochs_done"] = 0  # killed before the first epoch's checkpoint: start from scratch
    (run / "train_state.json").write_text(json.dumps(state))
    assert _read_state(run)[1] is None


def test_epoch_progress_shows_batches_rate_and_time_left():
    """On a terminal, each epoch shows a bar with images/s and time left; forced here."""
    import io

    import keras
    import numpy as np
    from rich.console import Console

    from cifar_pack.training.progress import EpochProgress

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((64, 4), np.float32), np.zeros(64, np.int64)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[EpochProgress(2, 8, 8, console=console)])
    shown = screen.getvalue()
    assert "epoch 1/2" in shown and "epoch 2/2" in shown and "images/s" in shown and "8/8" in shown
    assert "left in this epoch" in shown  # the time column says what it is


def test_a_broken_file_in_the_training_data_is_skipped_and_named(tmp_path):
    """One unreadable image among the class folders: the run finishes and says which file it left out
    (it stopped the run with no way to skip it)."""
    root = write_class_folders(tmp_path / "data", {"train": 10})
    (root / "train" / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    options = ("--epochs", "1", "--batch-size", "8", "--precision", "float32")  # forced: `auto` would choose by the CPU
    proc = run_cli("train", "--data", root, *options, "--out", tmp_path / "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 unreadable image(s) of 31" in proc.stderr and "broken.jpg" in proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["data"]["splits"] == {"train": 30}


def test_the_fast_recipe_trains_exports_within_parity_and_reloads(tiny_data, tmp_path):
    """The `fast` recipe end to end on tiny data: its custom layers (ScaledBias, PartialIdentity,
    the erf GELU) save, reload and convert; the exported graph keeps the contract (uint8 in,
    probabilities out, names inside) within export's parity gate; lookahead runs (from epoch 3 of 4)."""
    import numpy as np

    from cifar_pack.runtime.predictor import Predictor
    from cifar_pack.training.export import export_onnx
    from cifar_pack.training.model import load_keras_model
    from cifar_pack.training.train import train

    from .conftest import TRAIN_PRECISION

    config = RECIPES["fast"].with_overrides(epochs=4, batch_size=32, precision=TRAIN_PRECISION)
    assert config.lookahead
    result = train(str(tiny_data), tmp_path / "run", config)
    assert result.epochs == 4
    model = load_keras_model(result.model)
    assert {type(layer).__name__ for layer in model.layers} >= {"ScaledBias", "FusedBatchNorm"}
    exported = export_onnx(result.model, data=str(tiny_data), parity_samples=60)  # raises if parity fails
    predictor = Predictor(exported.onnx)
    probs = predictor.predict_proba(np.zeros((3, 32, 32, 3), np.uint8))
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert predictor.class_names == ["blue", "green", "red"]


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batchnorm_trains_and_infers_as_keras_batchnorm(policy):
    """FusedBatchNorm (training/architectures.py) computes a training step in TensorFlow's fused kernel:
    the same normalised outputs and moving statistics as Keras' BatchNormalization, in both
    precisions the recipes use (forced here, whatever this CPU would pick), and Keras' own
    inference. Tolerances: float32 sums in another order (outputs O(1): 1e-4); bf16 outputs keep
    8 significant bits (|x| < 4 here: 0.05 is about 3 steps of bf16 at 4); the fused kernel's
    moving variance is the unbiased one, n / (n - 1) with n = 32 x 7 x 7 = 1,568 (rtol 1e-3)."""
    import numpy as np

    from cifar_pack.training.architectures import FusedBatchNorm
    from cifar_pack.training.tf_setup import keras

    x = np.random.default_rng(0).normal(2.0, 3.0, (32, 7, 7, 16)).astype(np.float32)
    kwargs = {"momentum": 0.6, "center": False, "scale": False, "dtype": policy}
    keras_bn, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNorm(**kwargs)
    tolerance = 1e-4 if policy == "float32" else 0.05
    for _ in range(2):  # the second step starts from moved statistics
        a, b = (np.asarray(layer(x, training=True), np.float32) for layer in (keras_bn, fused))
        np.testing.assert_allclose(b, a, atol=tolerance)
        assert abs(float(a.std()) - 1.0) < 0.01  # it did normalise
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-3)
    assert abs(float(fused.moving_mean.numpy().mean()) - 2.0 * (1 - 0.6**2)) < 0.1  # two steps at momentum 0.6
    # Inference divides by those moving variances: 1 / sqrt(1 + 1/1567) moves outputs by 3e-4 of their size
    inference = (np.asarray(layer(x, training=False), np.float32) for layer in (keras_bn, fused))
    np.testing.assert_allclose(*inference, rtol=1e-3, atol=tolerance)


def test_batchnorm_refresh_gives_eval_mode_the_training_batches_statistics():
    """BatchNormRefresh (training/weights.py): after it, the model in inference mode on the refresh
    images answers as in training mode (their batch statistics). A fresh model's moving statistics
    (mean 0, variance 1) move its probabilities by > 0.05; each refresh runs 8 batches at momentum
    0.6 and deeper layers follow the ones before them, so three refreshes (24 batches) bring the
    difference under 1e-3 (measured: 3e-5; float32 sums, so not 0)."""
    import numpy as np

    from cifar_pack.training.architectures import build_fast_model, whitening_weights
    from cifar_pack.training.weights import BatchNormRefresh

    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    model = build_fast_model(3, whitening_weights(images), widths=(8, 16, 16))
    x = images.astype(np.float32)

    def eval_vs_train_mode() -> float:  # eval first: the training-mode call moves the statistics too
        return float(np.abs(model(x, training=False).numpy() - model(x, training=True).numpy()).max())

    assert eval_vs_train_mode() > 0.05
    refresh = BatchNormRefresh(np.concatenate([images] * 8), batch_size=64)
    refresh.set_model(model)
    for _ in range(3):
        refresh.on_test_begin()
    assert eval_vs_train_mode() < 1e-3


def test_batchnorm_refresh_batches_hold_every_class_of_a_class_ordered_split():
    """The training split's arrays are ordered by class; the refresh's first version took the
    first 4,096 images (4,000 airplanes), its second sorted a random sample back into class order.
    Each image here carries its class in its pixels: every refresh batch must hold all ten."""
    import numpy as np

    from cifar_pack.training.weights import BatchNormRefresh

    x_train = np.repeat(np.arange(10, dtype=np.uint8), 400)[:, None, None, None] * np.ones((1, 32, 32, 3), np.uint8)
    refresh = BatchNormRefresh.from_training_set(x_train, batch_size=256, seed=1337)
    assert len(refresh.batches) == 8
    for batch in refresh.batches:
        assert len(np.unique(batch.numpy()[:, 0, 0, 0])) == 10


@pytest.mark.parametrize(
    ("images", "drop", "sizes"),
    [(100, True, [32, 32, 32]), (100, False, [32, 32, 32, 4]), (20, True, [20]), (64, False, [32, 32])],
)
def test_training_batches_are_those_the_step_count_counts(images, drop, sizes):
    """``drop_remainder`` (the fast recipe's) drops each epoch's last, partial batch; a training set
    smaller than one batch keeps its one batch instead of none. The schedule, lookahead and the
    progress line count steps with ``train_steps``, so it must equal the pipeline's batches."""
    import numpy as np

    from cifar_pack.training.pipeline import make_pipeline, train_steps

    config = RECIPES["fast"].with_overrides(batch_size=32, drop_remainder=drop)
    x = np.zeros((images, 32, 32, 3), np.uint8)
    y = np.arange(images) % 3
    batches = [len(labels) for _, labels in make_pipeline(x, y, 3, config, training=True, epoch=0)]
    assert batches == sizes
    assert train_steps(images, config) == len(sizes)


def test_epoch_pipelines_run_without_tf_datas_autotuning_thread():
    """Each epoch's pipeline is destroyed when its fit() ends, and destroying one waited for the
    autotuning thread to wake (py-spy: ~IteratorResource in LogicalThreadWrapper's destructor):
    about 20 s at every other epoch's end, 4 minutes of a 30-epoch run. Training and validation
    pipelines keep autotuning off (pipeline.make_pipeline says why the fixed defaults suffice)."""
    import numpy as np

    from cifar_pack.training.pipeline import make_pipeline

    x, y = np.zeros((64, 32, 32, 3), np.uint8), np.arange(64) % 3
    for training, epoch in ((True, 0), (True, None), (False, None)):
        ds = make_pipeline(x, y, 3, RECIPES["fast"], training=training, epoch=epoch)
        assert ds.options().autotune.enabled is False


@pytest.mark.parametrize("epochs", [4, 10, 20])
def test_the_fast_learning_rate_peaks_at_the_same_share_of_training_whatever_the_epochs(epochs):
    """``warmup_fraction``: the fast recipe's triangle peaks at 30 % of its steps, so ``--epochs``
    keeps its shape (a fixed 3-epoch warm-up made a 4-epoch run peak at 75 %). At the recipe's
    epochs the bundled model's recorded config gives the same rate at every step: its reproduce
    command trains it the same way."""
    import numpy as np

    from cifar_pack.runtime.config import BUNDLED_MODEL
    from cifar_pack.runtime.records import MANIFEST_FILE
    from cifar_pack.training.config import TrainConfig
    from cifar_pack.training.pipeline import make_optimizer

    steps = 78  # 40,000 training images in whole batches of 512

    def rates(config: TrainConfig) -> np.ndarray:
        optimizer = make_optimizer(config, steps)
        values = []
        for step in range(config.epochs * steps):
            optimizer.iterations.assign(step)
            values.append(float(optimizer.learning_rate))
        return np.array(values)

    fast = RECIPES["fast"].with_overrides(epochs=epochs)
    lr = rates(fast)
    assert int(np.argmax(lr)) == int(0.3 * epochs * steps)
    assert lr.max() == pytest.approx(fast.learning_rate) and lr[0] == pytest.approx(0.2 * fast.learning_rate)
    if epochs == RECIPES["fast"].epochs:
        bundled = json.loads(BUNDLED_MODEL.with_name(MANIFEST_FILE).read_text())["config"]
        assert np.allclose(rates(TrainConfig.from_dict(bundled)), lr)


def test_alternating_flips_show_each_image_both_ways_round_in_two_epochs():
    """airbench's flips (``alternate_flips``): each training image carries its index in its left
    column and 255 in its right one, so the pipeline's output says which images came mirrored.
    Epochs 1 and 2 together mirror every image exactly once, epoch 3 repeats epoch 1, and about
    half are mirrored in each (a fixed random half: 100 images, so 50 +- 15 at 3 sigma)."""
    import numpy as np

    from cifar_pack.training.pipeline import make_pipeline

    config = RECIPES["fast"].with_overrides(batch_size=50)  # whole batches: no image dropped
    config = config.from_dict(config.to_dict() | {"augment": {"horizontal_flip": True, "alternate_flips": True}})
    x = np.zeros((100, 32, 32, 3), np.uint8)
    x[:, :, 0] = np.arange(100, dtype=np.uint8)[:, None, None]
    x[:, :, -1] = 255

    def mirrored(epoch: int) -> set[int]:
        images = np.concatenate([i.numpy() for i, _ in make_pipeline(x, np.zeros(100, int), 3, config, True, epoch)])
        return {int(row[0, -1, 0]) for row in images if row[0, 0, 0] == 255}

    first, second = mirrored(0), mirrored(1)
    assert first.isdisjoint(second) and len(first | second) == 100
    assert 35 <= len(first) <= 65
    assert mirrored(2) == first


def test_the_ladders_shape_fields_build_that_network():
    """TrainConfig's widths, activation, BatchNorm epsilon and whitening bias (benchmarks/recipe_ladder.py's
    rows) reach the network that `train` builds."""
    import numpy as np

    from cifar_pack.training.architectures import WHITEN_BIAS, build_fast_model, fast_shape, whitening_weights

    config = RECIPES["fast"].with_overrides(widths=(8, 16, 16), activation="gelu", batchnorm_epsilon=1e-12)
    config = config.with_overrides(whiten_bias_epochs=3)
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    model = build_fast_model(3, whitening_weights(images), **fast_shape(config))
    assert [model.get_layer(f"block{i}_conv2").filters for i in (1, 2, 3)] == [8, 16, 16]
    assert model.get_layer("block1_act1").activation.__name__ == "gelu"
    assert model.get_layer("block1_bn1").epsilon == 1e-12
    assert model.get_layer(WHITEN_BIAS).trainable
    plain = build_fast_model(3, whitening_weights(images), **fast_shape(RECIPES["fast"]))
    assert WHITEN_BIAS not in [layer.name for layer in plain.layers]  # the recipe: frozen from the start


def test_freeze_layer_stops_one_layers_training_after_its_epochs():
    """FreezeLayer: the named layer moves in its epochs and not after (neither a step nor weight
    decay), while the others keep training; the next fit() re-traces without it."""
    import keras
    import numpy as np

    from cifar_pack.training.weights import FreezeLayer

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, name="moving")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="frozen_later")(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.1, weight_decay=0.1), loss="mse")
    x, y = np.random.default_rng(0).random((32, 4)), np.random.default_rng(1).random((32, 2))
    freeze = FreezeLayer("frozen_later", after_epochs=1)
    before = [w.copy() for w in model.get_layer("frozen_later").get_weights()]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[freeze])
    after_first = [w.copy() for w in model.get_layer("frozen_later").get_weights()]
    moving = model.get_layer("moving").get_weights()[0].copy()
    model.fit(x, y, epochs=2, initial_epoch=1, verbose=0, callbacks=[freeze])
    assert not np.allclose(before[0], after_first[0])  # trained in its epoch
    for kept, now in zip(after_first, model.get_layer("frozen_later").get_weights()):
        np.testing.assert_array_equal(kept, now)  # exactly unchanged: no step, no decay
    assert not np.allclose(moving, model.get_layer("moving").get_weights()[0])
