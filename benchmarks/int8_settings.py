"""int8 settings on both CPU kinds: accuracy under each int8 kernel family, and speed here.

    python benchmarks/int8_settings.py [--emulated-images 2000] [--json out.json]

For each candidate setting, the bundled float32 model is quantized (static QDQ, 400 calibration
images from the training part of the recorded split, as `cifar-pack export --int8` does), then:
1. top-1 accuracy on the whole validation split (10,000 images) on this machine's own kernels;
2. top-1 accuracy on N validation images (every k-th, so every class is in) under QEMU user-mode emulation of an AMD
   EPYC-Milan (Zen 3: AVX2 without VNNI, the saturating VPMADDUBSW kernel) and of a Nehalem (SSE4.1
   kernels, exact int32 sums like AVX-512 VNNI and AMX), the float32 model on the same images
   natively for the reference (float32 kernels do not saturate);
3. the static bound: the worst int16 pair sum the AVX2 kernel can meet with these weights;
4. speed on this machine: float32 vs int8 at batch 256 and 1, interleaved, medians; then all
   int8 settings against each other at batch 256, round-robin over 9 rounds, medians.
Emulation is exact in arithmetic and meaningless for speed; speed on the other kind needs that
machine. `--bundled` also scores the bundled int8 file the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import SHARED_DATA, header, save

CANDIDATES = {  # overrides of config.DEFAULT_INT8 (7-bit weights, percentile calibration)
    "u8s8 8-bit, minmax (issue-2 setting)": dict(reduce_range=False, calibrate_method="minmax"),
    "u8s8 7-bit, minmax": dict(reduce_range=True, calibrate_method="minmax"),
    "u8u8 8-bit, minmax": dict(weights="uint8", reduce_range=False, calibrate_method="minmax"),
    "s8s8 8-bit, minmax": dict(activations="int8", reduce_range=False, calibrate_method="minmax"),
    "u8s8 7-bit, percentile (default)": dict(reduce_range=True, calibrate_method="percentile"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emulated-images", type=int, default=2000, help="validation images run under QEMU (0: none)")
    parser.add_argument("--bundled", action="store_true", help="also score the bundled int8 file")
    parser.add_argument("--only", default=None, help="comma-separated substrings of candidate names")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import onnxruntime as ort

    from cifar_pack.formats.config import DEFAULT_INT8
    from cifar_pack.formats.int8 import accuracy, avx2_pair_bound, measure_speedup, quantize_model
    from cifar_pack.runtime import data
    from cifar_pack.runtime.predictor import BUNDLED_MODEL

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the QEMU harness lives with the tests
    from tests.cpu_emulation import EMULATED_CPUS, emulated_probabilities, qemu_unavailable_reason

    info = header("int8 settings", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    meta = json.loads(Path(f"{BUNDLED_MODEL}.json").read_text())
    split, seed = data.split_params(meta["training"])
    x_all, y_all = data.load(SHARED_DATA).split("train")
    train_idx, val_idx = data.stratified_split(y_all, split, seed)
    rng = np.random.default_rng(seed)
    calib = x_all[rng.choice(train_idx, size=DEFAULT_INT8.calibration_samples, replace=False)]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    n_emu = 0 if qemu_unavailable_reason() else min(args.emulated_images, len(y_val))
    if n_emu == 0:
        print(f"no emulated figures: {qemu_unavailable_reason() or '--emulated-images 0'}")
    every = np.linspace(0, len(y_val) - 1, n_emu).astype(int) if n_emu else np.array([], int)
    x_emu, y_emu = x_val[every], y_val[every]  # the split is ordered by class: spread over all

    fp32 = ort.InferenceSession(str(BUNDLED_MODEL), providers=["CPUExecutionProvider"])
    acc32 = accuracy(fp32, x_val, y_val)
    acc32_emu = accuracy(fp32, x_emu, y_emu) if n_emu else None
    print(
        f"float32: {acc32:.4f} on {len(y_val)} validation images"
        + (f", {acc32_emu:.4f} on the {n_emu} emulated" if n_emu else "")
    )

    models = {}
    for name, overrides in CANDIDATES.items():
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        models[name] = quantize_model(BUNDLED_MODEL, calib, replace(DEFAULT_INT8, **overrides)).SerializeToString()
    if args.bundled:
        models["bundled int8 file"] = BUNDLED_MODEL.with_name("cifar10.int8.onnx").read_bytes()

    rows = []
    for name, blob in models.items():
        import onnx

        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        row = {"setting": name, "native_accuracy": accuracy(session, x_val, y_val)}
        row["native_drop_points"] = 100 * (acc32 - row["native_accuracy"])
        row |= avx2_pair_bound(onnx.load_from_string(blob))
        for kernels in EMULATED_CPUS if n_emu else ():
            probs = emulated_probabilities(blob, x_emu, kernels)
            acc = float(np.mean(probs.argmax(1) == y_emu))
            row[f"{kernels}_accuracy"] = acc
            row[f"{kernels}_drop_points"] = 100 * (acc32_emu - acc)
        row |= measure_speedup(fp32, session, x_val)
        rows.append(row)
        print(json.dumps(row))

    print(
        f"\n| setting | drop here ({len(y_val)} val) | drop, emulated AVX2 ({n_emu}) | drop, emulated exact-int32 "
        f"({n_emu}) | AVX2 worst pair sum | speed-up here, batch 256 | batch 1 |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        emu = [f"{r[k]:+.2f}" if k in r else "-" for k in ("avx2_drop_points", "exact-int32_drop_points")]
        print(
            f"| {r['setting']} | {r['native_drop_points']:+.2f} | {emu[0]} | {emu[1]} | {r['avx2_worst_pair_sum']:,}"
            f"{'' if r['saturation_free'] else ' (> 32,767)'} | {r['speedup_batch256']:.2f}x "
            f"| {r['speedup_batch1']:.2f}x |"
        )
    print("(drop = float32 top-1 minus int8 top-1, in points; positive is a loss)")

    # The settings against each other, round-robin in one loop, so machine noise hits all alike.
    import statistics
    import time

    sessions = {
        r["setting"]: ort.InferenceSession(models[r["setting"]], providers=["CPUExecutionProvider"]) for r in rows
    }
    batch = np.ascontiguousarray(x_val[:256])
    times = {name: [] for name in sessions}
    for _ in range(9):
        for name, session in sessions.items():
            started = time.perf_counter()
            session.run(None, {"images": batch})
            times[name].append(time.perf_counter() - started)
    reference = statistics.median(times[rows[0]["setting"]])
    print(f"\nint8 settings, batch 256, round-robin x9 (relative to '{rows[0]['setting']}'):")
    for name, ts in times.items():
        print(f"  {name}: {256 / statistics.median(ts):,.0f} images/s, {reference / statistics.median(ts):.2f}x")
        next(r for r in rows if r["setting"] == name)["round_robin_images_per_second"] = 256 / statistics.median(ts)
    save(args.json, info | {"float32_accuracy": acc32, "float32_accuracy_emulated_subset": acc32_emu, "rows": rows})


if __name__ == "__main__":
    main()
