"""One file, four runtimes; and OpenVINO as cifar-pack's second engine.

Every runtime is the real one from its own PyPI package (onnxruntime, openvino,
opencv-python-headless, tract), run on real photos: the quick-start samples, and 1,000 CIFAR-10
JPEGs of the shared archive where it is present (it is on the development machines and in CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cifar_pack.runtime.images import decode_bytes, load_image
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor

from .conftest import FLOAT32_REORDER_ATOL, assert_one_line_error, run_cli
from .helpers.runtimes import RUNTIMES, optimized_ops, run_onnxruntime, run_tract
from .helpers.samples import SAMPLES
from .helpers.server import Server, multipart

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
INT8 = BUNDLED_MODEL.with_name("cifar10.int8.onnx")
FILES = {"float32": BUNDLED_MODEL, "int8": INT8}


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """uint8 (N, 32, 32, 3): the 20 samples, plus every 50th JPEG of the shared archive if present.

    Overrides conftest's ``photos`` on purpose: runtimes are compared on a thousand real photos."""
    images = [load_image(p) for p in SAMPLES]
    if ARCHIVE.exists():
        with tarfile.open(ARCHIVE) as tar:
            members = [m for m in tar if m.name.endswith(".jpg")]
            images += [decode_bytes(tar.extractfile(m).read(), m.name) for m in members[::50]]
    return np.stack(images)


@pytest.mark.parametrize("runtime", list(RUNTIMES))
@pytest.mark.parametrize("kind", list(FILES))
def test_every_runtime_loads_the_file_and_agrees_with_onnxruntime(kind, runtime, photos):
    path = FILES[kind]
    reference = run_onnxruntime(path, photos)
    got = RUNTIMES[runtime](path, photos)
    assert got.shape == reference.shape
    agreement = float(np.mean(got.argmax(1) == reference.argmax(1)))
    print(f"{runtime} on the {kind} file: top-1 agreement {agreement:.2%} on {len(photos)} photos")
    assert agreement >= 0.995
    if kind == "float32":  # the same float32 arithmetic, up to summation order
        assert np.abs(got - reference).max() < 1e-5


@pytest.mark.parametrize("kind", list(FILES))
def test_the_shipped_graphs_have_static_shapes(kind):
    model = onnx.load(str(FILES[kind]))
    ops = [n.op_type for n in model.graph.node]
    assert "Shape" not in ops and "Gather" not in ops, ops
    constants = {t.name for t in model.graph.initializer}
    assert all(n.input[1] in constants for n in model.graph.node if n.op_type == "Reshape")
    assert [o.domain for o in model.opset_import] == [""]  # no domains the graph does not use


def test_int8_returns_float32_probabilities(photos):
    """Softmax and logits in float32: rows sum to 1, and no ties the output's quantization would make."""
    model = onnx.load(str(INT8))
    producers = {out: n for n in model.graph.node for out in n.output}
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    head = []  # from the softmax back to the last fully-connected layer: no quantize/dequantize in it
    node = producers[softmax.input[0]]
    while node.op_type not in ("Gemm", "MatMul"):
        head.append(node.op_type)
        node = producers[node.input[0]]
    assert not {"QuantizeLinear", "DequantizeLinear"} & set(head), head
    probs = run_onnxruntime(INT8, photos)
    assert np.abs(probs.sum(1) - 1).max() <= 1e-5
    top2 = np.sort(probs, axis=1)[:, -2:]
    assert not np.any(top2[:, 0] == top2[:, 1])
    levels = np.unique(np.round(probs * 255, 4))
    assert len(levels) > 1000  # not multiples of 1/255


def test_openvino_engine_matches_onnxruntime(photos):
    ort_f32 = Predictor(BUNDLED_MODEL, device="cpu").predict_proba(photos)
    ov_f32 = Predictor(BUNDLED_MODEL, engine="openvino").predict_proba(photos)
    assert np.abs(ov_f32 - ort_f32).max() < 1e-5  # two engines' float32 sums: see FLOAT32_REORDER_ATOL, x10
    ort8, ov8 = Predictor(INT8).predict_proba(photos), Predictor(INT8, engine="openvino").predict_proba(photos)
    assert float(np.mean(ov8.argmax(1) == ort8.argmax(1))) >= 0.995
    assert set(Predictor(INT8, engine="openvino").engine_info()) >= {"engine", "version", "precision", "kernels"}


def test_openvino_bf16_agrees_with_onnxruntime_float32(photos):
    ort_f32 = Predictor(BUNDLED_MODEL, device="cpu").predict_proba(photos)
    bf16 = Predictor(BUNDLED_MODEL, engine="openvino", precision="bf16")
    info = bf16.engine_info()
    assert info["engine"] == "openvino" and info["precision"] in ("bf16", "f32")  # f32 where the CPU has no bf16
    agreement = float(np.mean(bf16.predict_proba(photos).argmax(1) == ort_f32.argmax(1)))
    print(f"OpenVINO {info['precision']}: top-1 agreement {agreement:.2%} with onnxruntime float32")
    assert agreement >= 0.99


def test_openvino_engine_is_thread_safe(photos):
    """The server calls one predictor from several threads: each call gets its own infer request."""
    from concurrent.futures import ThreadPoolExecutor

    p = Predictor(BUNDLED_MODEL, engine="openvino")
    chunks = [photos[i : i + 7] for i in range(0, len(photos), 7)]
    expected = np.concatenate([p.predict_proba(chunk) for chunk in chunks])  # the same chunks, one thread
    with ThreadPoolExecutor(4) as pool:
        got = np.concatenate(list(pool.map(p.predict_proba, chunks)))
    assert got.shape == expected.shape
    # A mixed-up or overwritten request would give another image's probabilities (differences of
    # 0.1 and more). Equal chunks may still run on infer requests whose streams split the work
    # differently: float32 sums in another order, ~1e-7 relative on logits of magnitude ~10.
    np.testing.assert_allclose(got, expected, atol=FLOAT32_REORDER_ATOL, rtol=0)


def test_cli_engine_options(tmp_path):
    ort = run_cli("predict", *SAMPLES, "--json")
    ov = run_cli("predict", *SAMPLES, "--json", "--engine", "openvino")
    assert ov.returncode == 0, ov.stderr
    assert "(openvino, f32)" in ov.stderr
    assert [r["label"] for r in json.loads(ov.stdout)] == [r["label"] for r in json.loads(ort.stdout)]
    info = json.loads(run_cli("info", str(INT8), "--engine", "openvino", "--json").stdout)["engine"]
    assert info["engine"] == "openvino" and "Convolution" in info["kernels"]
    assert_one_line_error(run_cli("predict", SAMPLES[0], "--precision", "bf16"), "--precision bf16", code=2)
    assert_one_line_error(run_cli("predict", SAMPLES[0], "--engine", "tvm"), "--engine", code=2)


def test_missing_openvino_is_one_line_naming_the_extra():
    code = (
        "import sys; sys.modules['openvino'] = None\n"  # what `import openvino` meets where it is not installed
        "from cifar_pack.cli import main\n"
        f"sys.argv = ['cifar-pack', 'predict', {str(SAMPLES[0])!r}, '--engine', 'openvino']\n"
        "main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, "OpenVINO is not installed", "cifar-pack[openvino]", code=2)


def test_serve_on_openvino():
    server = Server("--engine", "openvino", "--max-queue-delay-ms", "2")
    try:
        body, headers = multipart([(p.name, p.read_bytes()) for p in SAMPLES])
        status, _, data = server.request("POST", "/predict", body, headers)
        assert status == 200, data
        expected = [r["label"] for r in Predictor(BUNDLED_MODEL).predict(SAMPLES)]
        assert [r["label"] for r in json.loads(data)] == expected
    finally:
        assert server.stop() == 0, server.log
    assert "(openvino, f32)" in server.log


def _flatten_like_tf2onnx() -> onnx.ModelProto:
    """images uint8 [N, 32, 32, 3] -> Cast -> Reshape to [N, 3072] with the target computed as tf2onnx
    writes Keras' Flatten (Shape -> Gather -> Unsqueeze -> Concat) -> MatMul -> Softmax."""
    w = np.random.default_rng(0).normal(0, 1e-3, (3072, 10)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "rest"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([3072], np.int64), "rest"),
        numpy_helper.from_array(w, "w"),
    ]
    graph = helper.make_graph(
        nodes,
        "flatten",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 32, 32, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_export_rewrites_an_older_graph(tmp_path, photos):
    """`export --model old.onnx --output new.onnx`: the shape computation becomes a constant, values unchanged."""
    old, new = tmp_path / "old.onnx", tmp_path / "new.onnx"
    onnx.save(_flatten_like_tf2onnx(), str(old))
    proc = run_cli("export", "--model", old, "--output", new)
    assert proc.returncode == 0, proc.stderr
    assert "max abs diff 0 " in proc.stdout
    rewritten = onnx.load(str(new))
    assert [n.op_type for n in rewritten.graph.node] == ["Cast", "Reshape", "MatMul", "Softmax"]
    graph = json.loads(next(p.value for p in rewritten.metadata_props if p.key == "graph"))
    assert graph == {
        "nodes_converted": 8,
        "nodes_written": 4,
        "removed": {"Concat": 1, "Gather": 1, "Shape": 1, "Unsqueeze": 1},
    }
    # Bit-equal on purpose: same engine, batch and threads, and the rewrite removed only the shape
    # computation, so the arithmetic nodes (Cast, MatMul, Softmax) run the same kernels on the same data.
    assert np.array_equal(run_onnxruntime(new, photos), run_onnxruntime(old, photos))
    assert run_tract(new, photos).shape == (len(photos), 10)


def _block_like_tf2onnx(scale_sign: float, activation: str = "gelu") -> onnx.ModelProto:
    """x float [N, 4, 8, 8] -> Conv -> MaxPool -> Mul(per-channel scale * scale_sign) -> Add ->
    activation -> y: the fast CNN's block, its GELU as tf2onnx writes Keras' (0.5*x * (1 + erf(x *
    0.7071))), or a ReLU."""
    rng = np.random.default_rng(0)
    c = lambda name, value: numpy_helper.from_array(np.asarray(value, np.float32), name)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w", "bias"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["conv"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Mul", ["pool", "scale"], ["bn"]),
        helper.make_node("Add", ["bn", "shift"], ["b"]),
    ]
    if activation == "relu":
        nodes.append(helper.make_node("Relu", ["b"], ["y"]))
    else:
        nodes += [
            helper.make_node("Mul", ["b", "r2"], ["s"]),
            helper.make_node("Erf", ["s"], ["e"]),
            helper.make_node("Add", ["one", "e"], ["a"]),
            helper.make_node("Mul", ["half", "b"], ["h"]),
            helper.make_node("Mul", ["h", "a"], ["y"]),
        ]
    inits = [
        c("w", rng.normal(0, 0.3, (4, 4, 3, 3))),
        c("bias", rng.normal(0, 0.3, 4)),
        c("scale", scale_sign * rng.uniform(0.5, 2.0, (1, 4, 1, 1))),
        c("shift", rng.normal(0, 1, (1, 4, 1, 1))),
        c("r2", 0.7071067811865476),
        c("one", [[[[1.0]]]]),
        c("half", 0.5),
    ]
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4, 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run_block(model: onnx.ModelProto) -> np.ndarray:
    import onnxruntime as ort

    x = np.random.default_rng(1).normal(0, 1, (16, 4, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_export_writes_gelu_and_batchnorm_in_the_form_onnxruntime_fuses(tmp_path):
    from cifar_pack.formats.graph import simplify

    original = _block_like_tf2onnx(+1.0)
    rewritten = simplify(original)
    assert "Erf" in optimized_ops(original, tmp_path)  # as tf2onnx writes it, onnxruntime keeps five passes
    # BatchNorm's Mul folded into the Conv; its Add stays after the pool (graph._scale_into_conv says why)
    assert sorted(optimized_ops(rewritten, tmp_path)) == ["Add", "Conv", "Gelu", "MaxPool"]
    # Same values up to float32 rounding: x / sqrt(2) against x * 0.7071..., the scale folded into the
    # Conv's weights, and onnxruntime's Gelu kernel; activations here are O(1), so 1e-5 is ~100 ulps.
    np.testing.assert_allclose(_run_block(rewritten), _run_block(original), atol=1e-5)


def test_export_puts_batchnorm_and_relu_into_the_conv_before_the_pool(tmp_path):
    """The ReLU fast CNN: BatchNorm's scale and shift go into the Conv and the ReLU before the pool
    (graph._relu_before_pool says why that is exact), which onnxruntime runs as one FusedConv."""
    from cifar_pack.formats.graph import simplify

    original = _block_like_tf2onnx(+1.0, "relu")
    rewritten = simplify(original)
    assert [n.op_type for n in rewritten.graph.node] == ["Conv", "Relu", "MaxPool"]
    assert optimized_ops(rewritten, tmp_path) == ["FusedConv", "MaxPool"]
    assert sorted(optimized_ops(original, tmp_path)) == ["Add", "Conv", "MaxPool", "Mul", "Relu"]
    # Same values up to float32 rounding: the scale multiplies the weights, the shift joins the bias
    # (one more rounding of O(1) sums), so 1e-5 is ~100 ulps.
    np.testing.assert_allclose(_run_block(rewritten), _run_block(original), atol=1e-5)


def test_a_negative_scale_stays_after_the_maxpool(tmp_path):
    """max(s*x) = s*max(x) only for s > 0: with a negative BatchNorm scale the order is kept."""
    from cifar_pack.formats.graph import simplify

    rewritten = simplify(_block_like_tf2onnx(-1.0))
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.index("MaxPool") < ops.index("Mul"), ops
    assert "Gelu" in optimized_ops(rewritten, tmp_path)  # the GELU rewrite does not depend on it


def test_every_conv_of_the_bundled_model_runs_fused_with_its_batchnorm_and_relu(tmp_path):
    """The bundled ReLU fast CNN: onnxruntime runs each of its 7 convolutions (whitening + 2 per
    block) as one FusedConv with its BatchNorm and ReLU; no element-wise pass is left between them."""
    ops = optimized_ops(onnx.load(str(BUNDLED_MODEL)), tmp_path)
    assert ops.count("FusedConv") == 7 and "Conv" not in ops, ops
    assert not {"Relu", "Add", "Erf", "Gelu"} & set(ops), ops


def test_export_of_an_onnx_without_output_or_int8_says_what_to_add(tmp_path):
    proc = run_cli("export", "--model", BUNDLED_MODEL)
    assert_one_line_error(proc, "already ONNX", "--output", code=2)
    assert not list(tmp_path.iterdir())


def test_engines_beside_other_work_do_not_spin_unless_asked(photos):
    """predict, serve, info, Ray and Spark open onnxruntime with idle threads that sleep
    (`sharing_cores`); a library user's `Predictor` keeps onnxruntime's default; `spinning=True`
    is kept. The answers are the same: spinning changes when threads wait, not what they compute
    (tolerance: the same engine and threads, so only FLOAT32_REORDER_ATOL for any reordering)."""
    from cifar_pack.runtime.engines import EngineSettings, sharing_cores

    default = Predictor(BUNDLED_MODEL)
    shared = Predictor(BUNDLED_MODEL, settings=sharing_cores(EngineSettings()))
    asked = Predictor(BUNDLED_MODEL, settings=sharing_cores(EngineSettings(spinning=True)))
    assert [p.engine_info()["spinning"] for p in (default, shared, asked)] == [True, False, True]
    np.testing.assert_allclose(
        shared.predict_proba(photos), default.predict_proba(photos), rtol=0, atol=FLOAT32_REORDER_ATOL
    )
    info = run_cli("info", str(BUNDLED_MODEL))
    assert "idle threads sleep" in info.stdout, info.stdout + info.stderr


@pytest.mark.parametrize("flag, spinning", [("--spin", True), ("--no-spin", False)])
def test_the_spin_option_reaches_the_session(flag, spinning):
    code = (
        "import sys; from cifar_pack.cli import main; from cifar_pack.runtime import predictor as p\n"
        "seen = []; real = p.Predictor.predict_files\n"
        "def spy(self, *a, **k):\n"
        "    seen.append(self.engine_info()['spinning']); return real(self, *a, **k)\n"
        "p.Predictor.predict_files = spy\n"
        f"sys.argv = ['cifar-pack', 'predict', {str(SAMPLES[0])!r}, '{flag}']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('SPINNING', seen)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert f"SPINNING [{spinning}]" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["avx2", "fma"], "OpenVINO gains nothing without AVX-512"),
        (["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"], "OpenVINO --precision bf16: 1.76x"),
        (["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"], "OpenVINO int8 file: 4.8x"),
        ([], "no figures for this CPU kind"),
    ],
    ids=["avx2", "avx512-vnni-bf16", "amx", "unmeasured"],
)
def test_engine_advice_follows_the_cpu_kind_given(flags, expected):
    """`info` says where int8 or OpenVINO paid, by CPU kind. The kind is given here, not
    read from this host, so every row is checked on any CPU."""
    from cifar_pack.runtime.sysinfo import engine_advice

    lines = engine_advice({"flags": flags, "machine": "x86_64", "model": "test CPU"})
    assert any(expected in line for line in lines), lines


def test_info_prints_advice_lines():
    """`info` prints `advice:` lines and the same list under "advice" in --json. What they say is
    not predicted from this host's CPU (test_engine_advice_follows_the_cpu_kind_given forces each
    kind): every line must be one the table can give for some kind, or the unmeasured-kind line."""
    from cifar_pack.runtime.sysinfo import MEASURED_GAINS, engine_advice

    proc = run_cli("info", str(BUNDLED_MODEL))
    assert proc.returncode == 0, proc.stderr
    printed = [line[len("advice: ") :] for line in proc.stdout.splitlines() if line.startswith("advice: ")]
    kinds = {"AVX2 without VNNI": ["avx2"], "AVX-512 VNNI, BF16": ["avx512_vnni", "avx512_bf16"]}
    kinds["AVX-512 VNNI, BF16, AMX"] = ["amx_int8"]
    assert set(kinds) == set(MEASURED_GAINS)
    possible = {line for flags in kinds.values() for line in engine_advice({"flags": flags, "machine": "x86_64"})}
    assert printed and all(line in possible or line.startswith("no figures for this CPU kind") for line in printed)
    as_json = json.loads(run_cli("info", str(BUNDLED_MODEL), "--json").stdout)
    assert as_json["advice"] == printed
