"""Export: the graph contract, metadata round trip, dynamic batch, and the gates failing on purpose."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cifar_pack.formats.config import DEFAULT_INT8
from cifar_pack.formats.parity import check_parity
from cifar_pack.runtime.errors import ModelError, ParityError
from cifar_pack.training.export import export_onnx

from .conftest import FLOAT32_REORDER_ATOL, TRAIN_PRECISION, assert_one_line_error, make_images, run_cli
from .helpers.keras_models import fragile_model


def test_graph_contract(exported):
    model = onnx.load(exported)
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("images", "tensor(uint8)", ["N", 32, 32, 3])
    assert (out.name, out.type, out.shape) == ("probabilities", "tensor(float)", ["N", 3])
    ops = {node.op_type for node in model.graph.node}
    assert "Cast" in ops and "Softmax" in ops
    assert not ops & {"RandomUniform", "RandomUniformLike", "Dropout"}  # no augmentation, no dropout


def test_batch_axis_is_dynamic_and_rows_sum_to_one(exported):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = make_images(9, (220, 30, 40), seed=5)
    full = session.run(None, {"images": x})[0]
    assert full.shape == (9, 3)
    for size in (1, 4):
        part = session.run(None, {"images": x[:size]})[0]
        np.testing.assert_allclose(part, full[:size], atol=FLOAT32_REORDER_ATOL)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-5)  # float32 softmax over <= 10 classes


def test_metadata_round_trip_and_sidecar(exported, trained_run):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert meta["class_names"] == ["blue", "green", "red"]
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["layout"] == "NHWC"
    assert meta["input"]["value_range"] == [0, 255]
    assert meta["output"]["name"] == "probabilities" and meta["output"]["softmax_added_by_export"] is False
    from cifar_pack.runtime.fileio import sha256_file

    assert meta["source_sha256"] == sha256_file(trained_run / "model.keras")
    assert meta["training"]["epochs"] == 3 and meta["training"]["val_accuracy"] > 0
    assert meta["parity"]["passed"] is True and meta["parity"]["samples"] == 60
    assert meta["parity"]["max_abs_diff"] <= 1e-5 and meta["parity"]["top1_agreement"] == 1.0
    assert set(meta["versions"]) >= {"cifar-pack", "keras", "tf2onnx", "onnx", "opset"}
    assert meta["exported_in_float32_from_mixed_precision"] is (TRAIN_PRECISION == "mixed_bfloat16")
    sidecar = json.loads((exported.parent / f"{exported.name}.json").read_text())
    assert sidecar == meta | {"model_sha256": sha256_file(exported)}  # the sidecar names the file it describes


def test_impossible_atol_fails_and_leaves_no_file(exported, trained_run, tiny_data, tmp_path):
    meta = json.loads((exported.parent / f"{exported.name}.json").read_text())
    measured = meta["parity"]["max_abs_diff"]
    assert measured > 0  # two different engines never agree to the last bit on 60 images
    out = tmp_path / "strict.onnx"
    with pytest.raises(ParityError, match="max abs diff") as info:
        export_onnx(trained_run / "model.keras", out, data=str(tiny_data), parity_samples=60, atol=measured / 2)
    assert info.value.report.passed is False and info.value.report.max_abs_diff == pytest.approx(measured)
    assert not out.exists() and not (tmp_path / "strict.onnx.json").exists()


def test_perturbed_graph_fails_parity(exported, trained_run):
    from cifar_pack.training.model import float32_copy, keras_probabilities, load_keras_model

    model = onnx.load(exported)
    biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    weights = onnx.numpy_helper.to_array(biggest).copy()
    weights *= 1.5
    biggest.CopyFrom(onnx.numpy_helper.from_array(weights, biggest.name))
    keras_model, _ = float32_copy(load_keras_model(trained_run / "model.keras"))
    x = make_images(20, (30, 200, 40), seed=1)
    with pytest.raises(ParityError) as info:
        check_parity(keras_probabilities(keras_model, False), model.SerializeToString(), x)
    assert info.value.report.max_abs_diff > 1e-3


def test_int8_export_and_its_report(trained_run, tiny_data, tmp_path):
    result = export_onnx(
        trained_run / "model.keras",
        tmp_path / "m.onnx",
        data=str(tiny_data),
        parity_samples=30,
        int8=True,
        int8_settings=replace(DEFAULT_INT8, calibration_samples=48),
    )
    assert result.int8 == tmp_path / "m.int8.onnx" and result.int8.exists()
    report = result.int8_report
    assert report["passed"] and report["accuracy_drop_points"] <= 1.0
    # 7-bit weights by default: the AVX2 kernel's int16 pair sums cannot saturate, whatever the host.
    assert report["settings"]["reduce_range"] is True and report["settings"]["weights"] == "int8"
    assert report["avx2"]["saturation_free"] is True and report["avx2"]["avx2_worst_pair_sum"] <= 32767
    # Where the gate ran is recorded, whatever this machine is (the families: test_int8_kernel_families).
    assert report["measured_on"]["cpu"] and report["measured_on"]["int8_kernel"] in KERNEL_FAMILIES
    for key in ("speedup_batch256", "speedup_batch1", "float32_accuracy", "int8_accuracy", "calibrate_method"):
        assert key in report
    model = onnx.load(result.int8)
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    session = ort.InferenceSession(str(result.int8), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == ["blue", "green", "red"] and "quantization" in meta


KERNEL_FAMILIES = {
    "AMX (int32 accumulation)",
    "VNNI (int32 accumulation)",
    "AVX2/AVX-512 without VNNI (VPMADDUBSW: int16 pair sums, can saturate)",
    "SSE (int32 accumulation)",
    "aarch64 (int32 accumulation)",
}


@pytest.mark.parametrize(
    "flags,machine,family",
    [
        (["avx2", "fma"], "x86_64", "AVX2/AVX-512 without VNNI (VPMADDUBSW: int16 pair sums, can saturate)"),  # Zen 3
        (["avx2", "avx512f"], "x86_64", "AVX2/AVX-512 without VNNI (VPMADDUBSW: int16 pair sums, can saturate)"),
        (["avx2", "avx512f", "avx512_vnni"], "x86_64", "VNNI (int32 accumulation)"),  # Zen 4
        (["avx2", "avx_vnni"], "x86_64", "VNNI (int32 accumulation)"),
        (["avx2", "avx512_vnni", "amx_int8"], "x86_64", "AMX (int32 accumulation)"),  # Sapphire Rapids
        ([], "x86_64", "SSE (int32 accumulation)"),
        ([], "aarch64", "aarch64 (int32 accumulation)"),
    ],
)
def test_int8_kernel_families(flags, machine, family):
    from cifar_pack.runtime.sysinfo import int8_kernel

    assert int8_kernel(flags, machine) == family and family in KERNEL_FAMILIES


def test_int8_drop_bound_fails_on_purpose(tmp_path, tiny_data):
    model_path = fragile_model(tmp_path / "fragile.keras")
    out = tmp_path / "fragile.onnx"
    with pytest.raises(ParityError, match="int8 accuracy gate failed") as info:
        export_onnx(
            model_path,
            out,
            data=str(tiny_data),
            parity_samples=30,
            int8=True,
            int8_settings=replace(DEFAULT_INT8, calibration_samples=48),
            max_accuracy_drop=0.0,
            calibrate=False,  # a random model's temperature would only blur what this test provokes
        )
    assert info.value.report["accuracy_drop_points"] > 0
    assert not (tmp_path / "fragile.int8.onnx").exists()


def test_foreign_h5_logits_model_gets_softmax_and_says_so(tmp_path, tiny_data):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)  # its own preprocessing: [-1, 1]
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))  # logits, no softmax
    path = tmp_path / "foreign.h5"
    model.save(path)
    result = export_onnx(path, data=str(tiny_data), parity_samples=30, calibrate=False)  # compared with Keras below
    meta = json.loads(result.onnx.with_name("foreign.onnx.json").read_text())
    assert meta["output"]["softmax_added_by_export"] is True
    assert meta["exported_in_float32_from_mixed_precision"] is False  # built under the float32 policy
    assert meta["class_names"] == ["blue", "green", "red"]  # taken from --data: same class count
    probs = ort.InferenceSession(str(result.onnx)).run(None, {"images": make_images(4, (0, 0, 0), 2)})[0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    x_in = make_images(4, (0, 0, 0), 2).astype(np.float32)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(x_in)))
    np.testing.assert_allclose(probs, expected, atol=1e-5)  # the model's [-1, 1] scaling was kept


@pytest.mark.parametrize(
    "builder,message",
    [
        (lambda k: k.Sequential([k.Input((28, 28, 1)), k.layers.Flatten(), k.layers.Dense(10)]), "input shape"),
        (lambda k: k.Sequential([k.Input((32, 32, 3)), k.layers.Flatten(), k.layers.Dense(1)]), "class vector"),
    ],
)
def test_models_that_do_not_fit_are_refused(tmp_path, builder, message):
    import keras

    path = tmp_path / "wrong.keras"
    builder(keras).save(path)
    with pytest.raises(ModelError, match=message) as info:
        export_onnx(path)
    assert str(path) in str(info.value)


@pytest.mark.slow
def test_cli_export_json_and_bad_files(trained_run, tiny_data, tmp_path):
    proc = run_cli(
        "export",
        "--onnx",
        "--model",
        trained_run / "model.keras",
        "--output",
        tmp_path / "c.onnx",
        "--data",
        tiny_data,
        "--parity-samples",
        "20",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"onnx", "int8", "parity", "int8_report", "calibration", "seconds"}
    # Calibrated by default: the run's validation split gave the images (a 3-epoch model's T may sit at an edge)
    assert result["calibration"]["temperature"] > 0 and result["calibration"]["split"] == "val"
    assert set(result["parity"]) >= {"samples", "max_abs_diff", "mean_abs_diff", "top1_agreement", "atol", "passed"}
    assert result["int8"] is None and result["parity"]["samples"] == 20
    text = run_cli(
        "export",
        "--model",
        trained_run / "model.keras",
        "--output",
        tmp_path / "t.onnx",
        "--data",
        tiny_data,
        "--parity-samples",
        "20",
    )
    assert text.returncode == 0 and (text.stdout + text.stderr).count("parity") == 1, text  # said once, not twice

    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"definitely not a zip")
    assert_one_line_error(run_cli("export", "--model", junk), "junk.keras", "not a loadable Keras model", code=1)
    assert_one_line_error(run_cli("export", "--model", tmp_path / "nope.keras"), "nope.keras", code=2)
