"""int8 on both CPU kinds, each forced by emulation instead of read from the host.

onnxruntime's AVX2 U8S8 kernel (AMD Zen 3 here) adds pairs of u8*s8 products in a saturating
int16; VNNI/AMX and the SSE4.1 kernels sum exactly in int32 (see tests/cpu_emulation.py).
QEMU user-mode emulation of an EPYC-Milan forces the first, of a Nehalem the second, on any
x86-64 host. The first test proves the harness sees saturation when it happens; the others
prove the shipped and the exported int8 models cannot meet it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cifar_pack.formats.config import DEFAULT_INT8, Int8Settings
from cifar_pack.formats.int8 import avx2_pair_bound, quantize_model
from cifar_pack.runtime.predictor import BUNDLED_MODEL

from .conftest import make_images
from .cpu_emulation import emulated_probabilities, qemu_unavailable_reason
from .helpers.samples import SAMPLE_DIR

needs_qemu = pytest.mark.skipif(
    qemu_unavailable_reason() is not None, reason=f"int8 kernels not forced: {qemu_unavailable_reason()}"
)


def _bright_conv_classifier(path: Path) -> Path:
    """uint8 images -> /255 -> Conv 3x3 (all weights equal and large) -> mean -> Gemm -> Softmax.

    With equal weights every int8 weight quantizes to 127 at 8 bits, so two bright pixels
    (u8 ~ 250) give a pair sum of 250 * 127 * 2 = 63,500: far past int16's 32,767.
    """
    rng = np.random.default_rng(0)
    w = np.full((8, 3, 3, 3), 0.05, np.float32) + rng.normal(0, 1e-3, (8, 3, 3, 3)).astype(np.float32)
    dense = rng.normal(0, 4.0, (8, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["images"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "inv255"], ["xs"]),
        helper.make_node("Transpose", ["xs"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "dense"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "bright",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 32, 32, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 4])],
        [
            numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"),
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(dense, "dense"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _bright_images(n: int) -> np.ndarray:
    return np.clip(make_images(n, (235, 235, 235), seed=3).astype(np.int16) + 20, 0, 255).astype(np.uint8)


def assert_same_integers(avx2: np.ndarray, exact: np.ndarray) -> None:
    """The same integer layers on both kernel families. What follows the last int8 layer (its
    dequantized float32 output, the softmax) is float32 since 2026-12-01 and differs by rounding
    between the two CPUs' vector widths (~2e-7); a saturated sum moves probabilities by > 1e-3.
    The top-1 may differ only where the two best classes are closer than that rounding (2e-6, ten
    times it): there the float32 tail decides, not the integer layers."""
    assert np.abs(avx2 - exact).max() <= 1e-6
    for row in np.flatnonzero(avx2.argmax(1) != exact.argmax(1)):
        best_two = np.sort(exact[row])[-2:]
        assert best_two[1] - best_two[0] <= 2e-6, (row, exact[row], avx2[row])


@needs_qemu
def test_emulated_avx2_shows_saturation_that_seven_bit_weights_remove(tmp_path):
    fp32 = _bright_conv_classifier(tmp_path / "bright.onnx")
    x = _bright_images(16)
    full = quantize_model(fp32, x, Int8Settings(reduce_range=False))
    assert avx2_pair_bound(full)["saturation_free"] is False
    avx2 = emulated_probabilities(full.SerializeToString(), x, "avx2")
    exact = emulated_probabilities(full.SerializeToString(), x, "exact-int32")
    assert np.abs(avx2 - exact).max() > 1e-3  # the harness sees the AVX2 kernel saturate

    seven = quantize_model(fp32, x, Int8Settings(reduce_range=True))
    assert avx2_pair_bound(seven)["saturation_free"] is True
    avx2 = emulated_probabilities(seven.SerializeToString(), x, "avx2")
    exact = emulated_probabilities(seven.SerializeToString(), x, "exact-int32")
    assert_same_integers(avx2, exact)


def test_bundled_int8_weights_cannot_saturate_the_avx2_kernel():
    bound = avx2_pair_bound(onnx.load(BUNDLED_MODEL.with_name("cifar10.int8.onnx")))
    assert bound["saturation_free"] is True, bound


@needs_qemu
def test_bundled_int8_gives_identical_probabilities_on_avx2_and_vnni_kernels():
    from cifar_pack.runtime.images import load_image

    photos = np.stack([load_image(p) for p in sorted(SAMPLE_DIR.glob("*.jpg"))])
    x = np.concatenate([photos, make_images(12, (128, 128, 128), seed=9), _bright_images(12)])
    assert x.shape == (44, 32, 32, 3)  # 20 quick-start photos, 12 mid-grey and 12 bright fields
    model = BUNDLED_MODEL.with_name("cifar10.int8.onnx")
    assert_same_integers(emulated_probabilities(model, x, "avx2"), emulated_probabilities(model, x, "exact-int32"))


def test_default_settings_are_the_saturation_free_ones():
    assert DEFAULT_INT8.reduce_range is True and DEFAULT_INT8.weights == "int8"
    assert "7-bit" in DEFAULT_INT8.describe()
