"""The same model on Ray Data and Apache Spark, in local mode: labels equal `cifar-pack predict`'s.

Real engines, nothing mocked: Ray starts a local cluster of 2 CPUs, Spark runs `local[2]` on the
Java runtime (.ci/run installs Debian's default-jre-headless where `java` is missing). The input is
the 20 quick-start JPEGs, a PNG with alpha and a file that is not an image, which must come back as
an error row while the job completes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import FLOAT32_REORDER_ATOL, run_cli
from .helpers.samples import SAMPLE_DIR
from .snippets import doc_block

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scale")
    for photo in SAMPLE_DIR.glob("*.jpg"):
        shutil.copy(photo, folder / photo.name)
    rgba = np.dstack([np.full((40, 50, 3), (200, 30, 40), np.uint8), np.linspace(0, 255, 2000).reshape(40, 50)])
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(folder / "alpha.png")
    (folder / "broken.jpg").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def cli_labels(files) -> dict[str, dict]:
    proc = run_cli("predict", files, "--json", "--top-k", "3")
    assert proc.returncode == 1  # broken.jpg
    return {Path(r["path"]).name: r for r in json.loads(proc.stdout)}


def test_ray_data_gives_the_cli_labels_and_an_error_row_also_in_written_files(files, cli_labels, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is in the [ray] extra")
    from cifar_pack.ray import Classifier

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        ds = ray.data.read_binary_files(str(files), include_paths=True)
        rows = ds.map_batches(
            Classifier,
            fn_constructor_kwargs={"top_k": 3},
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=1,
            batch_size=8,
        ).take_all()
        # What users do with the result: Ray's own writers, read back from the files.
        predicted = ds.map_batches(
            Classifier, fn_constructor_kwargs={"top_k": 3}, compute=ray.data.ActorPoolStrategy(size=1), batch_size=8
        )
        predicted.write_json(str(tmp_path / "json"))
        predicted.write_parquet(str(tmp_path / "parquet"))
        images = ray.data.read_images(str(files / "cat_1444.jpg"), include_paths=True)
        decoded = images.map_batches(Classifier, compute=ray.data.ActorPoolStrategy(size=1), batch_size=4).take_all()
    finally:
        ray.shutdown()
    assert len(rows) == len(cli_labels) == 22
    for row in rows:
        want = cli_labels[Path(row["path"]).name]
        if "error" in want:
            assert row["error"] and row["label"] is None and "not a readable image" in row["error"]
            continue
        assert row["error"] is None and row["label"] == want["label"], row["path"]
        assert row["probability"] == pytest.approx(want["probability"], abs=FLOAT32_REORDER_ATOL)
        assert list(row["top_k_labels"]) == [t["label"] for t in want["top_k"]]
    assert decoded[0]["label"] == cli_labels["cat_1444.jpg"]["label"]  # the `image` column of read_images
    import pyarrow.parquet as pq

    written = {
        "json": [json.loads(line) for f in sorted((tmp_path / "json").glob("*.json")) for line in f.open()],
        "parquet": [r for f in sorted((tmp_path / "parquet").glob("*.parquet")) for r in pq.read_table(f).to_pylist()],
    }
    for kind, table in written.items():
        assert len(table) == 22, kind
        for row in table:
            want = cli_labels[Path(row["path"]).name]
            if "error" in want:
                assert row["label"] is None and row["top_k_labels"] == [None, None, None], (kind, row)
                continue
            assert row["top_k_labels"] == [t["label"] for t in want["top_k"]], (kind, row["path"])
            got = row["top_k_probabilities"]
            assert got == pytest.approx([t["probability"] for t in want["top_k"]], abs=FLOAT32_REORDER_ATOL), kind


def test_spark_gives_the_cli_labels_and_an_error_row(files, cli_labels):
    pytest.importorskip("pyspark", reason="PySpark is in the [spark] extra")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (Debian: apt-get install default-jre-headless)")
    from pyspark.sql import SparkSession

    from cifar_pack.spark import classify_udf

    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this environment, with cifar-pack
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        frame = spark.read.format("binaryFile").load(str(files))
        rows = frame.select("path", classify_udf(top_k=3)("content").alias("p")).collect()
    finally:
        spark.stop()
    assert len(rows) == 22
    for row in rows:
        want = cli_labels[Path(row.path.removeprefix("file:")).name]
        if "error" in want:
            assert row.p.error and row.p.label is None
            continue
        assert row.p.error is None and row.p.label == want["label"], row.path
        assert row.p.probability == pytest.approx(want["probability"], abs=FLOAT32_REORDER_ATOL)
        assert row.p.top_k_labels == [t["label"] for t in want["top_k"]]


@pytest.mark.parametrize("engine", ["ray", "spark"])
def test_docs_scale_snippets_run_as_written(engine, files):
    """docs/scale.md's Ray and Spark programs, run from the checkout as a reader would."""
    pytest.importorskip("ray" if engine == "ray" else "pyspark", reason=f"{engine} is in the [{engine}] extra")
    if engine == "spark" and shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (Debian: apt-get install default-jre-headless)")
    import subprocess

    block = doc_block(ROOT / "docs" / "scale.md", f"cifar_pack.{engine} import")
    out = Path(re.search(r'"(/tmp/cifar-pack-[a-z]+-predictions)"', block).group(1))
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for part in sorted(out.glob("*.json")) for line in part.read_text().splitlines()]
    shutil.rmtree(out, ignore_errors=True)
    assert len(rows) == 20
    labels = {Path(r["path"].removeprefix("file:")).name: r.get("label") or r["prediction"]["label"] for r in rows}
    assert sum(labels[name] == name.split("_")[0] for name in labels) >= 16  # the bundled model's ~80 %


def test_the_adapters_run_on_openvino_too(files, cli_labels):
    """Ray's callable class and Spark's per-worker function, called as the engines call them, with
    engine="openvino": the same labels as `cifar-pack predict`, and the broken file an error row."""
    from cifar_pack.ray import Classifier
    from cifar_pack.runtime.config import Engine
    from cifar_pack.runtime.engines import EngineSettings
    from cifar_pack.spark import make_predict_fn

    paths = sorted(files.iterdir())
    contents = np.array([p.read_bytes() for p in paths], dtype=object)
    classifier = Classifier(threads=1, engine="openvino")
    assert classifier.predictor.engine_info()["engine"] == "openvino"
    ray_rows = classifier({"bytes": contents, "path": np.array([str(p) for p in paths])})
    spark_rows = make_predict_fn(None, 1, EngineSettings(engine=Engine.openvino, device="cpu"))(contents)
    for rows in (ray_rows, spark_rows):
        for i, path in enumerate(paths):
            if path.name == "broken.jpg":
                assert rows["label"][i] is None and "not a readable image" in rows["error"][i]
            else:
                assert rows["label"][i] == cli_labels[path.name]["label"], path.name


def test_decoding_beside_inference_gives_the_same_columns_in_order(files):
    """`classify_encoded` decodes the next chunk of a batch while the engine runs on this
    one (Ray's Classifier). Its columns equal decoding all then classifying (the same engine,
    threads and chunking of rows: FLOAT32_REORDER_ATOL for any batch-size reordering), rows in
    input order, the broken file an error row, on a batch of several chunks."""
    from cifar_pack.runtime.columns import OVERLAP_CHUNK, classify_columns, classify_encoded, decode_all
    from cifar_pack.runtime.predictor import Predictor

    paths = sorted(files.iterdir()) * 8  # 176 rows: three chunks of 64, the last one short
    assert len(paths) > 2 * OVERLAP_CHUNK
    contents = np.array([p.read_bytes() for p in paths], dtype=object)
    names = [str(p) for p in paths]
    predictor = Predictor()
    overlapped = classify_encoded(predictor, contents, names, top_k=3)
    plain = classify_columns(predictor, decode_all(predictor, contents, names), top_k=3)
    assert list(overlapped) == list(plain)
    assert list(overlapped["label"]) == list(plain["label"]) and list(overlapped["error"]) == list(plain["error"])
    np.testing.assert_allclose(
        overlapped["top_k_probabilities"], plain["top_k_probabilities"], rtol=0, atol=FLOAT32_REORDER_ATOL
    )
    assert sum(e is not None for e in overlapped["error"]) == 8
