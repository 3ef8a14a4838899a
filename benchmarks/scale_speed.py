"""Predict at scale: `cifar-pack predict --output`, Ray Data and Spark on the same JPEGs, and predict's memory.

    python benchmarks/scale_speed.py [--images 10000] [--memory-images 100000] [--json out.json]

One run, on the same files (every Nth JPEG of the shared CIFAR-10 archive, written to a temporary
folder): images/s of
  * predict: the CLI in a fresh process, `--output x.jsonl` (cold: process start, model load,
    everything), and the same streaming code in this process with the model already loaded (warm);
  * Ray Data (local, 2 CPUs): read_binary_files -> map_batches(cifar_pack.ray.Classifier), cold
    (ray.init included) and warm (a second run on the started cluster);
  * Spark (local[2]): binaryFile -> cifar_pack.spark.classify_udf, cold (session start) and warm.
Then predict's peak RSS (a fresh process each) at --images and at --memory-images images (hard
links of the same files), in every output mode. Labels of the engines are checked against predict.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import SHARED_DATA, header, save

# Engine settings found on 2 cores (docs/scale.md): more, smaller tasks than the engines' defaults.
RAY_ACTORS, RAY_BATCH, RAY_THREADS = 1, 256, 2  # 1 actor (num_cpus=1) whose engine uses both cores
SPARK_CONF = {
    "spark.ui.enabled": "false",
    # Each small file counted as 4 MB by default: 10,000 JPEGs became 313 partitions of 32 files.
    "spark.sql.files.openCostInBytes": "0",
    "spark.sql.files.maxPartitionBytes": str(8 * 2**20),
    "spark.sql.execution.arrow.maxRecordsPerBatch": "256",
}


def write_jpegs(folder: Path, count: int) -> list[Path]:
    with tarfile.open(SHARED_DATA) as tar:
        members = [m for m in tar if m.name.endswith(".jpg")]
        step = max(1, len(members) // count)
        paths = []
        for member in members[::step][:count]:
            path = folder / member.name.replace("/", "_")
            path.write_bytes(tar.extractfile(member).read())
            paths.append(path)
    return paths


def predict_cold(folder: Path, out: Path) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cifar_pack", "predict", str(folder), "-o", str(out), "--overwrite"], check=True
    )
    seconds = time.perf_counter() - started
    labels = {Path(r["path"]).name: r["label"] for r in map(json.loads, out.read_text().splitlines())}
    return seconds, labels


def predict_warm(folder: Path, out: Path) -> float:
    from cifar_pack.cli.predict import in_input_order
    from cifar_pack.runtime.inputs import iter_images
    from cifar_pack.runtime.predictor import Predictor
    from cifar_pack.runtime.results import result_file

    predictor = Predictor(device="cpu")
    started = time.perf_counter()
    with result_file(out) as write:
        for result in in_input_order(predictor, iter_images([str(folder)]), 1, 256, lambda n: None):
            write(result)
    return time.perf_counter() - started


def ray_run(folder: Path) -> tuple[float, dict[str, str]]:
    import ray

    from cifar_pack.ray import Classifier

    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ds = ray.data.read_binary_files(str(folder), include_paths=True)
    rows = (
        ds.map_batches(
            Classifier,
            fn_constructor_kwargs={"threads": RAY_THREADS},
            compute=ray.data.ActorPoolStrategy(size=RAY_ACTORS),
            num_cpus=1,
            batch_size=RAY_BATCH,
        )
        .select_columns(["path", "label"])
        .take_all()
    )
    return time.perf_counter() - started, {Path(r["path"]).name: r["label"] for r in rows}


def spark_run(folder: Path, session=None):
    from pyspark.sql import SparkSession

    from cifar_pack.spark import classify_udf

    started = time.perf_counter()
    if session is None:
        os.environ["PYSPARK_PYTHON"] = sys.executable
        builder = SparkSession.builder.master("local[2]")
        for key, value in SPARK_CONF.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
    frame = session.read.format("binaryFile").load(str(folder))
    rows = frame.select("path", classify_udf()("content").alias("p")).select("path", "p.label").collect()
    return time.perf_counter() - started, {Path(r.path).name: r.label for r in rows}, session


def peak_rss_mb(folder: Path, *mode: str) -> float:
    probe = (
        "import resource, sys\nfrom cifar_pack.cli import main\nsys.argv = ['cifar-pack', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "predict", str(folder), *mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return float(proc.stderr.strip().splitlines()[-1])


def speed_table(folder: Path, count: int, tmp: Path) -> dict:
    rates = {}
    seconds, cli = predict_cold(folder, tmp / "cold.jsonl")
    rates["predict --output (cold)"] = count / seconds
    rates["predict --output (warm)"] = count / predict_warm(folder, tmp / "warm.jsonl")
    seconds, ray_labels = ray_run(folder)
    rates["Ray Data (cold)"] = count / seconds
    seconds, _ = ray_run(folder)
    rates["Ray Data (warm)"] = count / seconds
    seconds, spark_labels, session = spark_run(folder)
    rates["Spark (cold)"] = count / seconds
    seconds, _, session = spark_run(folder, session)
    rates["Spark (warm)"] = count / seconds
    session.stop()
    same = {"ray": ray_labels == cli, "spark": spark_labels == cli}
    return {"images_per_second": rates, "labels_equal_predict": same}


def memory_table(folder: Path, count: int, large: int, tmp: Path) -> dict:
    big = tmp / "big"
    big.mkdir()
    files = sorted(folder.iterdir())
    for i in range(large):
        os.link(files[i % len(files)], big / f"{i:07d}.jpg")
    out = {}
    for name, mode in (
        ("plain", []),
        ("--json", ["--json"]),
        ("--output", ["-o", str(tmp / "m.jsonl"), "--overwrite"]),
    ):
        out[name] = {count: peak_rss_mb(folder, *mode), large: peak_rss_mb(big, *mode)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--memory-images", type=int, default=100_000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    info = header("predict at scale", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    ray_settings = f"{RAY_ACTORS} actor, batch {RAY_BATCH}, {RAY_THREADS} engine threads"
    print(f"java: {java}; spark settings: {SPARK_CONF}; ray: {ray_settings}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "jpegs"
        folder.mkdir()
        write_jpegs(folder, args.images)
        speed = speed_table(folder, args.images, tmp)
        memory = memory_table(folder, args.images, args.memory_images, tmp)
    base = speed["images_per_second"]["predict --output (warm)"]
    for name, rate in speed["images_per_second"].items():
        print(f"{name:<26} {rate:8.0f} images/s  {rate / base:5.2f}x predict (warm)")
    print(f"labels equal to predict: {speed['labels_equal_predict']}")
    for mode, rss in memory.items():
        sizes = ", ".join(f"{n:,} images {mb:.0f} MB" for n, mb in rss.items())  # one entry when both counts are equal
        print(f"predict {mode:<9} peak RSS: {sizes}")
    save(args.json, info | {"java": java, "speed": speed, "memory": memory})


if __name__ == "__main__":
    main()
