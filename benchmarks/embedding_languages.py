"""C, C++, Java, Go and Rust (examples/<lang>/run) against the Python Predictor, as docs/embedding.md reports them.

    python benchmarks/embedding_languages.py [--jpegs 500] [--json out.json]

Each example runs with no Python on PATH, already built (a first call builds it, untimed), on the
test corpus of odd and hostile images (tests/helpers/odd_images.py: every PNG mode, JPEG variants,
EXIF, odd names, and the files Pillow refuses) plus the 20 quick-start samples, then on the 20
samples and every 97th JPEG of the shared CIFAR-10 archive with a 160x120 enlargement of each at
4:2:2 and 4:2:0 (a third progressive). Printed per language: images, top-1 agreement, largest
probability difference, hostile files refused by name, the peak RSS refusing a 26000x26000 PNG
(a helper process whose only child is the example), and the wall time of one call over the JPEGs
(process start, model load and decoding included: images/s of the whole command).
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import SHARED_DATA, header, save
from PIL import Image

from cifar_pack.runtime.images import load_image
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor
from tests.helpers.examples import EXAMPLES, LANGUAGES, python_free_env, run_example
from tests.helpers.odd_images import write_corpus
from tests.helpers.samples import SAMPLES


def real_jpegs(folder: Path, count: int) -> list[Path]:
    """Every 97th JPEG of the shared archive and two enlargements of each, written into ``folder``."""
    paths: list[Path] = list(SAMPLES)
    if not SHARED_DATA.exists():
        return paths
    with tarfile.open(SHARED_DATA) as tar:
        members = [m for m in tar if m.name.endswith(".jpg")][3::97][:count]
        for i, member in enumerate(members):
            data = tar.extractfile(member).read()
            paths.append(folder / f"c{i:04d}.jpg")
            paths[-1].write_bytes(data)
            big = Image.open(io.BytesIO(data)).resize((160, 120), Image.Resampling.BICUBIC)
            for sub in (1, 2):  # 4:2:2, 4:2:0
                paths.append(folder / f"e{i:04d}_{sub}.jpg")
                big.save(paths[-1], quality=70 + i % 25, subsampling=sub, progressive=i % 3 == 0)
    return paths


def agreement(lang: str, files: list[Path], want: np.ndarray, names: list[str], env: dict) -> dict:
    started = time.perf_counter()
    answer = run_example(lang, BUNDLED_MODEL, files, env=env)
    seconds = time.perf_counter() - started
    got = np.stack([answer.rows[str(p)][1] for p in files])
    labels = [answer.rows[str(p)][0] for p in files]
    return {
        "images": len(files),
        "top1_agreement": float(np.mean([lab == names[int(w.argmax())] for lab, w in zip(labels, want)])),
        "max_abs_probability_diff": float(np.abs(got - want).max()),
        "seconds": round(seconds, 2),
    }


def peak_rss_mb(lang: str, huge: Path, env: dict) -> float:
    measure = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    cmd = [sys.executable, "-c", measure, str(EXAMPLES / lang / "run"), str(BUNDLED_MODEL), str(huge), str(SAMPLES[0])]
    return int(subprocess.run(cmd, capture_output=True, text=True, env=env).stdout) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jpegs", type=int, default=500)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    info = header("Embedding examples vs Python", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    tools = {t: shutil.which(t) for t in ("java", "go", "cargo", "gcc", "mvn")}
    print("toolchains: " + ", ".join(f"{t} {'found' if p else 'MISSING'}" for t, p in tools.items()))
    predictor, results = Predictor(BUNDLED_MODEL, device="cpu"), {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = python_free_env(tmp_path / "path")
        good, hostile = write_corpus(tmp_path / "corpus")
        good += SAMPLES
        (tmp_path / "jpegs").mkdir()
        jpegs = real_jpegs(tmp_path / "jpegs", args.jpegs)
        want_good = predictor.predict_proba(np.stack([load_image(p) for p in good]))
        want_jpegs = predictor.predict_proba(np.stack([load_image(p) for p in jpegs]))
        huge = next(p for p in hostile if "26000" in p.name)
        for lang in LANGUAGES:
            run_example(lang, BUNDLED_MODEL, SAMPLES[:1], env=env)  # builds: not measured
            corpus = agreement(lang, good, want_good, predictor.class_names, env)
            refused = run_example(lang, BUNDLED_MODEL, hostile, env=env).errors
            results[lang] = {
                "corpus": corpus
                | {"hostile": len(hostile), "hostile_refused": sum(str(h) in refused for h in hostile)},
                "jpegs": agreement(lang, jpegs, want_jpegs, predictor.class_names, env),
                "peak_rss_mb_huge_png": round(peak_rss_mb(lang, huge, env), 1),
            }
    for lang, r in results.items():
        c, j = r["corpus"], r["jpegs"]
        print(
            f"{lang}: corpus {c['images']} images, top-1 {c['top1_agreement']:.2%}, max diff "
            f"{c['max_abs_probability_diff']:.1e}, hostile refused {c['hostile_refused']}/{c['hostile']}; "
            f"JPEGs {j['images']}, top-1 {j['top1_agreement']:.2%}, max diff {j['max_abs_probability_diff']:.1e}, "
            f"{j['images'] / j['seconds']:.0f} images/s for the whole command; "
            f"peak RSS on the 26000x26000 PNG {r['peak_rss_mb_huge_png']:.0f} MB"
        )
    save(args.json, info | {"results": results})


if __name__ == "__main__":
    main()
