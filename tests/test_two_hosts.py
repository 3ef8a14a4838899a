"""Ray, Spark, training and Ray Serve on two real hosts, with a node dying mid-job.

The hosts are network namespaces joined by a veth pair (tests/helpers/hosts.py): their own
addresses on a /30 of 10.213.0.0/24, nothing sent anywhere else. The worker node cannot see the
model's folder and has a private temporary folder, so the model reaches it through the engine or
not at all. Answers are compared with `cifar-pack predict` on the same files (the suite's rule:
labels equal, probabilities within FLOAT32_REORDER_ATOL), every row exactly once. Needs root (CI
runs as root on the polyglot machine, where these must run); elsewhere each test says why it skips.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from .conftest import FLOAT32_REORDER_ATOL, run_cli
from .helpers import hosts
from .helpers.clusters import ray_cluster, spark_cluster
from .helpers.samples import write_variants

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "cifar_pack" / "pretrained" / "cifar10.onnx"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(hosts.skip_reason() is not None, reason=str(hosts.skip_reason()))]


def doc_block(name: str, marker: str) -> str:
    """The ```python block of docs/NAME that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / name).read_text(), flags=re.S)
    return next(b for b in blocks if marker in b)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The model in a folder of its own, which the worker node cannot see."""
    folder = tmp_path_factory.mktemp("model")
    shutil.copy(BUNDLED, folder / "model.onnx")
    return folder


def cli_answers(photos: Path, model: Path) -> dict[str, dict]:
    proc = run_cli("predict", photos, "--model", model, "--json", "--top-k", "3")
    assert proc.returncode == 0, proc.stderr
    return {Path(r["path"]).name: r for r in json.loads(proc.stdout)}


def assert_cli_answers(rows: list[dict], want: dict[str, dict]) -> None:
    """Each file exactly once, with the CLI's label and top-3 (probabilities: the suite's tolerance)."""
    names = [Path(r["path"].removeprefix("file:")).name for r in rows]
    assert sorted(names) == sorted(want), f"{len(names)} rows for {len(want)} files, {len(set(names))} distinct"
    for name, row in zip(names, rows):
        assert row.get("error") is None and row["label"] == want[name]["label"], (name, row)
        got = row["top_k_probabilities"]
        assert got == pytest.approx([t["probability"] for t in want[name]["top_k"]], abs=FLOAT32_REORDER_ATOL), name


def read_json_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for part in sorted(folder.glob("*.json")) for line in part.read_text().splitlines()]


def test_ray_data_job_on_two_hosts_gets_the_model_through_the_object_store(model_dir, tmp_path):
    """docs/scale.md's cluster job on a head and a worker node: actors on both nodes (the worker
    has no copy of the model), every file once, the CLI's answers."""
    photos = tmp_path / "photos"
    write_variants(photos, 1000)  # four batches of 256 or more: work for both actors
    script = tmp_path / "predict_ray_cluster.py"
    # The docs' job, with one more column: the node that answered each row.
    script.write_text(doc_block("scale.md", "ray.put(").replace("    Classifier,", "    NodeClassifier,").replace(
        "model_file, photos", NODE_CLASSIFIER + "model_file, photos"))
    want = cli_answers(photos, model_dir / "model.onnx")
    started = time.monotonic()
    with ray_cluster(hide=[model_dir]) as cluster:
        proc = cluster.driver([sys.executable, script, model_dir / "model.onnx", photos, tmp_path / "out"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_json_rows(tmp_path / "out")
    assert_cli_answers(rows, want)
    nodes = {r["node"] for r in rows}
    print(f"ray on two hosts: {len(rows)} rows, each once, from {len(nodes)} nodes, {time.monotonic() - started:.1f} s")
    assert len(nodes) == 2


NODE_CLASSIFIER = """class NodeClassifier(Classifier):
    def __call__(self, batch):
        rows = super().__call__(batch)
        return rows | {"node": [ray.get_runtime_context().get_node_id()] * len(rows["label"])}


"""


def test_ray_data_job_finishes_every_row_once_when_the_worker_node_dies(model_dir, tmp_path):
    """10,000 files; once the first results are written, every process of the worker node is
    killed (its raylet, object store and actors: the node is gone). Ray Data restarts the lost
    actors and re-runs the lost tasks on the head (its defaults for an actor pool: max_restarts
    and max_task_retries -1): the job ends with every file exactly once and the CLI's answers."""
    photos = tmp_path / "photos"
    write_variants(photos, 10_000)
    script = tmp_path / "predict_ray_cluster.py"
    script.write_text(doc_block("scale.md", "ray.put("))
    out = tmp_path / "out"
    want = cli_answers(photos, model_dir / "model.onnx")
    started = time.monotonic()
    with ray_cluster(hide=[model_dir]) as cluster:
        job = cluster.start_driver([sys.executable, script, model_dir / "model.onnx", photos, out])
        wait_for_files(out, "*.json", job)
        killed = cluster.hosts.kill_all("b")
        killed_at = time.monotonic() - started
        stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr[-3000:]
    rows = read_json_rows(out)
    assert_cli_answers(rows, want)
    print(f"ray, worker node killed ({killed} processes) at {killed_at:.0f} s: {len(rows)} rows, each once, "
          f"job done at {time.monotonic() - started:.0f} s")


def wait_for_files(folder: Path, pattern: str, job, timeout: float = 300) -> None:
    """Until the job has written its first results (a fault then strikes mid-job)."""
    deadline = time.monotonic() + timeout
    while not any(folder.glob(pattern)):
        assert job.poll() is None, f"the job ended ({job.returncode}) before writing anything"
        assert time.monotonic() < deadline, f"no {pattern} in {folder} after {timeout:.0f} s"
        time.sleep(0.2)


SPARK_HOST_COLUMN = """import os
from pyspark.sql import functions as F
"""
HOST = 'F.udf(lambda: os.environ.get("CIFAR_PACK_TEST_HOST"))().alias("host"),'


def spark_job(tmp_path: Path) -> Path:
    """docs/scale.md's Spark job, with one more column: the host whose executor answered the row."""
    script = tmp_path / "predict_spark_cluster.py"
    block = doc_block("scale.md", "--files")
    script.write_text(SPARK_HOST_COLUMN + block.replace('files.select("path",', f'files.select("path", {HOST}'))
    return script


def spark_rows(folder: Path) -> list[dict]:
    return [{"path": r["path"], "host": r["host"], **r["prediction"]} for r in read_json_rows_named(folder, "part-*.json")]


def read_json_rows_named(folder: Path, pattern: str) -> list[dict]:
    return [json.loads(line) for part in sorted(folder.glob(pattern)) for line in part.read_text().splitlines()]


def submit(cluster, model: Path, script: Path, photos: Path, out: Path) -> list:
    """docs/scale.md's spark-submit line, on the master's host."""
    return ["spark-submit", "--master", cluster.env["SPARK_MASTER"], "--conf", "spark.ui.enabled=false",
            "--files", model, script, photos, out]  # fmt: skip


def test_spark_job_on_two_hosts_ships_the_model_with_files(model_dir, tmp_path):
    """docs/scale.md's spark-submit on a standalone master with a worker on each host: the model
    reaches the second host only through --files; every file once, the CLI's answers, rows
    answered on both hosts."""
    photos = tmp_path / "photos"
    write_variants(photos, 1000)
    want = cli_answers(photos, model_dir / "model.onnx")
    started = time.monotonic()
    with spark_cluster(hide=[model_dir]) as cluster:
        proc = cluster.driver(submit(cluster, model_dir / "model.onnx", spark_job(tmp_path), photos, tmp_path / "out"),
                              timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = spark_rows(tmp_path / "out")
    assert_cli_answers(rows, want)
    per_host = {h: sum(r["host"] == h for r in rows) for h in "ab"}
    print(f"spark on two hosts: {len(rows)} rows, each once, per host {per_host}, {time.monotonic() - started:.1f} s")
    assert per_host["a"] and per_host["b"]
