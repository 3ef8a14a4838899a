"""The kernel-sensitive tests again, on an AVX2-only CPU's kernels, forced instead of left to luck.

oneDNN, inside OpenVINO and TensorFlow, reads ``ONEDNN_MAX_CPU_ISA`` when it starts and never
uses instructions above it: capped at AVX2 on an AVX-512 host it runs the kernels an AVX2-only
CPU (AMD Zen 1 to 3) runs, which block and round differently (checked below by the kernel names
OpenVINO reports: ``brgconv_avx2_f32``, ``jit_avx2_I8``, as on a real Zen 1). On an AVX2-only
host the cap changes nothing and these tests repeat the native run. onnxruntime's MLAS has no
such switch; its int8 kernel families are forced by QEMU instead (test_int8_portability.py and
test_docs_usage.py's int8 step, through tests/cpu_emulation.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAPPED = os.environ | {"ONEDNN_MAX_CPU_ISA": "AVX2"}
# Engines on real photos (OpenVINO f32, bf16 and int8 against onnxruntime, the thread-safety
# check) and export (TensorFlow's oneDNN training and the Keras-vs-onnxruntime parity gate).
KERNEL_SENSITIVE = ["tests/test_engines.py", "tests/test_export.py"]
# Not under the cap: OpenVINO reads bf16 support from CPUID, not from the cap, and then finds no
# bf16 kernel in the capped oneDNN (a real AVX2 CPU computes f32 and says so: test_engines.py).
NOT_CAPPABLE = "not bf16"


def test_capping_onednn_at_avx2_selects_avx2_kernels_in_openvino():
    code = (
        "from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor\n"
        "for f in (BUNDLED_MODEL, BUNDLED_MODEL.with_name('cifar10.int8.onnx')):\n"
        "    print(Predictor(f, engine='openvino').engine_info()['kernels']['Convolution'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=CAPPED, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    f32, int8 = proc.stdout.split("\n")[:2]
    assert "avx2" in f32 and "avx2" in int8 and "avx512" not in proc.stdout, proc.stdout


@pytest.mark.slow
def test_engine_and_export_tests_pass_on_avx2_kernels():
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", NOT_CAPPABLE, *KERNEL_SENSITIVE]
    proc = subprocess.run(cmd, cwd=ROOT, env=CAPPED, capture_output=True, text=True, timeout=1500)
    print(proc.stdout[-600:])
    assert proc.returncode == 0, proc.stdout[-4000:]
