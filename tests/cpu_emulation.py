"""Run onnxruntime as it runs on another CPU, by QEMU user-mode emulation of that CPU.

onnxruntime picks its int8 GEMM kernel from CPUID at start-up, and the kernels do not compute
the same numbers: with uint8 activations and int8 weights (U8S8), AVX2 without VNNI multiplies
with VPMADDUBSW, which adds two u8*s8 products into a *saturating* int16 before widening, while
AVX-512 VNNI, AVX-VNNI, AMX and the SSE4.1 kernels accumulate every product in int32 exactly.
So an int8 model can score differently on the project's two machine kinds (AMD Zen 4 with
AVX-512 VNNI, AMD Zen 3 with AVX2 only). ``qemu-x86_64 -cpu MODEL`` reports MODEL's CPUID to the
emulated process, which forces the kernel choice whatever the host has: this is how tests and
benchmarks check both paths on any x86-64 machine. It emulates instructions exactly (saturation
included) but slowly (about 40 ms per image for the seed CNN): use it for correctness, never
for speed.

Nothing here imports TensorFlow; onnxruntime runs only inside the emulated child process.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from cifar_pack.runtime.config import INPUT_NAME

# Which kernel family each name forces, and the QEMU CPU model that forces it. QEMU's TCG has no
# AVX-512 or AVX-VNNI, so the exact-int32 family is reached through the SSE4.1 kernels, which
# compute the same integers as VNNI/AMX (checked: identical probabilities to a native AMX host).
EMULATED_CPUS = {
    "avx2": "EPYC-Milan",  # AMD Zen 3, the project's AVX2-only machine: VPMADDUBSW, int16 pairs
    "exact-int32": "Nehalem",  # SSE4.2, no AVX: int32 accumulation, as AVX-512 VNNI and AMX
}
# Some hosts force numpy's OpenBLAS kernels with OPENBLAS_CORETYPE (older OpenBLAS builds
# misdetect their CPU). Under emulation that forced type is the host's, not the emulated CPU's:
# "Haswell" kernels die with SIGILL on an emulated Nehalem. Where the host forces one, the
# emulated process is given the emulated CPU's own type instead.
OPENBLAS_CORETYPES = {"avx2": "ZEN", "exact-int32": "NEHALEM"}

_CHILD = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[4])
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
out = [session.run(None, {sys.argv[5]: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
np.save(sys.argv[3], np.concatenate(out))
"""


def qemu_unavailable_reason() -> str | None:
    """None when emulation can run here, else why not (for a skip reason or an error)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"QEMU user-mode x86-64 emulation needs an x86-64 host, this is {platform.machine()}"
    if shutil.which("qemu-x86_64") is None:
        return "qemu-x86_64 is not installed (Debian: apt-get install qemu-user)"
    return None


def emulated_environment(kernels: str, environ: dict | None = None) -> dict:
    """``environ`` (default ``os.environ``) for a process under the CPU of ``kernels``."""
    env = dict(os.environ if environ is None else environ)
    if "OPENBLAS_CORETYPE" in env:
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPES[kernels]
    return env


def emulated_python(kernels: str) -> list[str]:
    """The command line that starts this Python under the CPU of ``kernels`` (a key of ``EMULATED_CPUS``)."""
    return ["qemu-x86_64", "-cpu", EMULATED_CPUS[kernels], sys.executable]


def emulated_probabilities(
    model: str | Path | bytes, images: np.ndarray, kernels: str, threads: int = 2, timeout: float = 1800
) -> np.ndarray:
    """Probabilities of ``model`` on uint8 (N, 32, 32, 3) ``images`` under an emulated CPU.

    Args:
        model: an ``.onnx`` path or the serialized model.
        images: uint8 (N, 32, 32, 3) RGB.
        kernels: a key of ``EMULATED_CPUS`` ("avx2" or "exact-int32").

    Returns:
        float32 (N, C), as onnxruntime computes them on that CPU.

    Raises:
        RuntimeError: emulation unavailable here, or the emulated process failed.
    """
    reason = qemu_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if isinstance(model, bytes):
            (tmp / "model.onnx").write_bytes(model)
            model = tmp / "model.onnx"
        np.save(tmp / "x.npy", np.ascontiguousarray(images, dtype=np.uint8))
        cmd = emulated_python(kernels) + ["-c", _CHILD]
        cmd += [str(model), str(tmp / "x.npy"), str(tmp / "p.npy"), str(threads), INPUT_NAME]
        env = emulated_environment(kernels)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if "TCG doesn't support" not in line]
            raise RuntimeError(f"emulated {kernels} run failed: {' | '.join(errors[-3:])}")
        return np.load(tmp / "p.npy")
