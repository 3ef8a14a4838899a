"""Two shared cores: onnxruntime's spinning threads and predict's decoding, measured together.

    python benchmarks/two_cores.py [--model M.onnx] [--images 10000] [--json out.json]

One run, the same 10,000 JPEGs (32x32, written from the shared archive's last training images):
1. model only: `Predictor.predict_proba` over the already-decoded images, batch 256, with
   onnxruntime's idle threads spinning (its default) and not, at its default threads (all cores);
2. end to end: `Predictor.predict_files` over the files (decode + model), for each setting of
   spinning and decoding threads, as a ratio to model only (spinning) of the same run;
3. decoding alone, one thread.
Configurations alternate, three rounds each, medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import SHARED_DATA, header, save, write_jpegs


def rate(fn, count: int) -> float:
    started = time.perf_counter()
    fn()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from cifar_pack.runtime import data
    from cifar_pack.runtime.engines import EngineSettings
    from cifar_pack.runtime.images import load_image
    from cifar_pack.runtime.predictor import Predictor, resolve_model

    model = str(resolve_model(args.model))
    info = header("two shared cores", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    with tempfile.TemporaryDirectory() as tmp:
        x, _ = data.load(SHARED_DATA).split("train")
        paths = write_jpegs(Path(tmp), x[-args.images :])
        decoded = np.stack([load_image(p) for p in paths])
        predictors = {
            spin: Predictor(model, settings=EngineSettings(device="cpu", spinning=spin)) for spin in (True, False)
        }

        def model_only(spin):
            p = predictors[spin]
            return lambda: [p.predict_proba(decoded[i : i + 256]) for i in range(0, len(decoded), 256)]

        def end_to_end(spin, decoders):
            p = predictors[spin]
            return lambda: sum(1 for _ in p.predict_files(paths, batch_size=256, decoders=decoders))

        cases = {f"model only, spinning {s}": model_only(s) for s in (True, False)}
        for spin in (True, False):
            for decoders in (1, 2):
                cases[f"predict_files, spinning {spin}, {decoders} decoding thread(s)"] = end_to_end(spin, decoders)
        cases["decoding only, one thread"] = lambda: [load_image(p) for p in paths]
        for fn in cases.values():
            fn()  # warm: page cache, kernels
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                rates[name].append(rate(fn, len(paths)))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    base = medians["model only, spinning True"]
    for name, value in medians.items():
        print(f"{name:<55} {value:8.0f} images/s  {value / base:5.2f}x model only (spinning)")
    save(args.json, info | {"model": model, "images_per_second": medians})


if __name__ == "__main__":
    main()
