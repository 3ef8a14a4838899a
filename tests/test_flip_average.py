"""`export --flip-average`: the graph averages each image's probabilities with its mirror image's
(test-time flip averaging, inside the file so that every runtime and language gets it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from .conftest import FLOAT32_REORDER_ATOL, assert_one_line_error, run_cli
from .helpers.runtimes import RUNTIMES, optimized_ops, run_onnxruntime


@pytest.fixture(scope="module")
def flip_averaged(trained_run, tiny_data, tmp_path_factory) -> Path:
    """The tiny run's model exported with --flip-average, from the command line as a user would."""
    out = tmp_path_factory.mktemp("flip") / "model.onnx"
    proc = run_cli(
        "export", "--model", trained_run / "model.keras", "--output", out, "--data", tiny_data,
        "--parity-samples", "60", "--flip-average", "--no-calibrate",  # compared with Keras' mirrored mean
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out} with flip averaging (parity on 60 " in proc.stdout
    return out


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """(24, 32, 32, 3) uint8 noise: no image is its own mirror, so a missing or wrong flip shows."""
    return np.random.default_rng(7).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)


def test_flip_averaged_file_gives_the_mean_of_each_image_and_its_mirror(flip_averaged, exported, noise):
    """Against the same model exported without the option, in the same engine: the two graphs run
    the same kernels, but in another order, hence FLOAT32_REORDER_ATOL and not equality."""
    plain = run_onnxruntime(exported, noise)
    mirrored = run_onnxruntime(exported, np.ascontiguousarray(noise[:, :, ::-1]))
    averaged = run_onnxruntime(flip_averaged, noise)
    assert np.abs(plain - mirrored).max() > 1e-3  # the mirror images do change the answer
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, atol=FLOAT32_REORDER_ATOL)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=FLOAT32_REORDER_ATOL)


def test_flip_averaged_file_answers_an_image_and_its_mirror_alike(flip_averaged, noise):
    mirrored = np.ascontiguousarray(noise[:, :, ::-1])
    once, twice = run_onnxruntime(flip_averaged, noise), run_onnxruntime(flip_averaged, mirrored)
    np.testing.assert_allclose(once, twice, atol=FLOAT32_REORDER_ATOL)  # the two passes swap places


def test_flip_averaged_file_keeps_the_contract_and_says_what_it_does(flip_averaged, exported):
    """One uint8 NHWC input, one output, the mirror as a Gather of constant columns (no shape
    computed at run time), and the metadata telling embedders that one call is two passes."""
    model = onnx.load(str(flip_averaged))
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    ops = [n.op_type for n in model.graph.node]
    assert "Shape" not in ops and ops.count("Gather") == 1 and ops.count("Softmax") == 2
    constants = {t.name for t in model.graph.initializer}
    assert all(n.input[1] in constants for n in model.graph.node if n.op_type == "Gather")
    meta = json.loads(Path(f"{flip_averaged}.json").read_text())
    assert meta["output"]["flip_averaged"] is True and "mirror image" in meta["output"]["meaning"]
    assert json.loads(Path(f"{exported}.json").read_text())["output"]["flip_averaged"] is False


def test_flip_averaged_file_shares_its_weights_between_the_two_passes(flip_averaged, exported):
    """The network runs twice but is stored once: the file is not twice the plain one's size."""
    assert flip_averaged.stat().st_size < 1.1 * exported.stat().st_size


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_flip_averaged_file_runs_on_every_runtime(flip_averaged, noise, runtime):
    """Same float32 arithmetic as onnxruntime up to summation order; 1e-5 as for the bundled file
    (tests/test_engines.py): other engines pick other kernels, so more than one reorder."""
    reference = run_onnxruntime(flip_averaged, noise)
    got = RUNTIMES[runtime](flip_averaged, noise)
    assert got.shape == reference.shape and np.abs(got - reference).max() < 1e-5


def test_model_card_of_a_flip_averaged_file_says_so_and_reproduces_it(flip_averaged, tiny_data, tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    proc = run_cli(
        "evaluate", "--model", flip_averaged, "--data", tiny_data, "--out", tmp_path / "eval", "--model-card", card
    )
    assert proc.returncode == 0, proc.stderr
    text = card.read_text()
    assert "mean of its own and its mirror image's" in text
    assert "cifar-pack export --onnx --model " in text and " --flip-average" in text


def test_flip_average_needs_the_keras_model(exported):
    proc = run_cli("export", "--model", exported, "--output", exported.with_name("again.onnx"), "--flip-average")
    assert_one_line_error(proc, "--flip-average", "already ONNX", code=2)


def test_both_passes_of_a_flip_averaged_fast_cnn_run_as_fused_convolutions(tmp_path):
    """The fast recipe's network, exported with --flip-average: its weights are shared by the two
    passes, and each of the 14 convolutions still runs as one FusedConv with its BatchNorm and ReLU
    (export's rewrites once skipped weights read by two Convs: 6 Mul and 6 Add passes were left)."""
    from cifar_pack.training.architectures import build_fast_model, whitening_weights
    from cifar_pack.training.export import export_onnx

    rng = np.random.default_rng(3)
    model = build_fast_model(3, whitening_weights(rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)))
    for weight in model.weights:  # as after training: untrained BatchNorm (mean 0, variance 1, bias 0) folds away
        shape = tuple(weight.shape)
        noise = rng.normal(0, 0.1, shape)
        moved = rng.uniform(0.5, 2.0, shape) if "variance" in weight.path else weight.numpy() + noise
        weight.assign(moved.astype("float32"))
    model.save(tmp_path / "fast.keras")
    onnx_path = export_onnx(tmp_path / "fast.keras", tmp_path / "fast.onnx", parity_samples=16, flip_average=True).onnx
    ops = optimized_ops(onnx.load(str(onnx_path)), tmp_path)
    assert ops.count("FusedConv") == 14 and "Conv" not in ops, ops
    assert ops.count("Add") == 1 and "Relu" not in ops, ops  # the Add: the two passes' probabilities
