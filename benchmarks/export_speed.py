"""Export speed: `cifar-pack export --onnx` of the seed CNN with parity on 1,000 images, wall time.

    python benchmarks/export_speed.py --model RUN/model.keras [--repeats 3] [--json out.json]

Runs the real command in a fresh process (TensorFlow import, model load, tf2onnx conversion,
onnx.checker, parity on 1,000 validation images at two batch sizes, atomic writes), `--repeats`
times; the median wall time is quoted (goal: at most 15 s on the 2-core machine), with the
import of TensorFlow alone measured in the same run for scale. Then once more with --int8.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import header, save


def wall(cmd) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr)
    return time.perf_counter() - t, proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    info = header("export speed", __doc__.split("\n\n")[2].replace("\n", " "))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        for name in ("model.keras", "manifest.json", "history.json"):
            if (Path(args.model).parent / name).exists():
                shutil.copy(Path(args.model).parent / name, run / name)
        cmd = [
            sys.executable,
            "-m",
            "cifar_pack",
            "export",
            "--onnx",
            "--model",
            str(run / "model.keras"),
            "--parity-samples",
            "1000",
            "--json",
        ]
        tf_import = statistics.median(wall([sys.executable, "-c", "import tensorflow"])[0] for _ in range(args.repeats))
        times, report = [], None
        for _ in range(args.repeats):
            seconds, proc = wall(cmd)
            times.append(seconds)
            report = json.loads(proc.stdout)
        int8_seconds, int8_proc = wall([*cmd, "--int8"])
    result = {
        "export_wall_s": statistics.median(times),
        "export_wall_all_s": times,
        "import_tensorflow_s": tf_import,
        "parity": report["parity"],
        "export_with_int8_wall_s": int8_seconds,
        "int8_report": json.loads(int8_proc.stdout)["int8_report"],
    }
    print(
        f"\nexport + parity on {report['parity']['samples']} images: median {result['export_wall_s']:.1f} s wall "
        f"(runs: {', '.join(f'{t:.1f}' for t in times)}; goal <= 15 s); import tensorflow alone: {tf_import:.1f} s"
    )
    print(
        f"parity: max abs diff {report['parity']['max_abs_diff']:.2e}, mean {report['parity']['mean_abs_diff']:.2e}, "
        f"top-1 agreement {report['parity']['top1_agreement']:.2%}"
    )
    r = result["int8_report"]
    print(
        f"with --int8: {int8_seconds:.1f} s wall; int8 accuracy {r['int8_accuracy']:.4f} vs float32 "
        f"{r['float32_accuracy']:.4f} (drop {r['accuracy_drop_points']:.2f} points); speedup "
        f"{r['speedup_batch256']:.2f}x at batch 256, {r['speedup_batch1']:.2f}x at batch 1; "
        f"measured on {r['measured_on']['int8_kernel']}"
    )
    save(args.json, info | {"results": result})


if __name__ == "__main__":
    main()
