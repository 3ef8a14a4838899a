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
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import FLOAT32_REORDER_ATOL, run_cli, write_class_folders
from .helpers import hosts
from .helpers.clusters import ray_cluster, spark_cluster
from .helpers.samples import write_variants
from .snippets import assert_prints_its_comment, doc_block

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TRAIN_PORT = 12345  # each worker's TensorFlow server, on its own host's address
BUNDLED = ROOT / "cifar_pack" / "pretrained" / "cifar10.onnx"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(hosts.skip_reason() is not None, reason=str(hosts.skip_reason()))]


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


def read_json_rows(folder: Path, pattern: str = "*.json") -> list[dict]:
    """Every line of the JSON-lines files ``pattern`` names in ``folder`` (an engine's written output)."""
    return [json.loads(line) for part in sorted(folder.glob(pattern)) for line in part.read_text().splitlines()]


def test_ray_data_job_on_two_hosts_gets_the_model_through_the_object_store(model_dir, tmp_path, figures):
    """docs/scale.md's cluster job on a head and a worker node: actors on both nodes (the worker
    has no copy of the model), every file once, the CLI's answers."""
    photos = tmp_path / "photos"
    write_variants(photos, 1000)  # four batches of 256 or more: work for both actors
    script = tmp_path / "predict_ray_cluster.py"
    # The docs' job, with one more column: the node that answered each row.
    script.write_text(
        doc_block(DOCS / "scale.md", "ray.put(")
        .replace("    Classifier,", "    NodeClassifier,")
        .replace("model_file, photos", NODE_CLASSIFIER + "model_file, photos")
    )
    want = cli_answers(photos, model_dir / "model.onnx")
    started = time.monotonic()
    with ray_cluster(hide=[model_dir]) as cluster:
        proc = cluster.driver([sys.executable, script, model_dir / "model.onnx", photos, tmp_path / "out"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_json_rows(tmp_path / "out")
    assert_cli_answers(rows, want)
    nodes = {r["node"] for r in rows}
    seconds = time.monotonic() - started
    figures(f"ray on two hosts: {len(rows)} rows, each once, from {len(nodes)} nodes, {seconds:.1f} s")
    assert len(nodes) == 2


NODE_CLASSIFIER = """class NodeClassifier(Classifier):
    def __call__(self, batch):
        rows = super().__call__(batch)
        return rows | {"node": [ray.get_runtime_context().get_node_id()] * len(rows["label"])}


"""


def test_ray_data_job_finishes_every_row_once_when_the_worker_node_dies(model_dir, tmp_path, figures):
    """10,000 files; once the first results are written, every process of the worker node is
    killed (its raylet, object store and actors: the node is gone). Ray Data restarts the lost
    actors and re-runs the lost tasks on the head (its defaults for an actor pool: max_restarts
    and max_task_retries -1): the job ends with every file exactly once and the CLI's answers."""
    photos = tmp_path / "photos"
    write_variants(photos, 10_000)
    script = tmp_path / "predict_ray_cluster.py"
    script.write_text(doc_block(DOCS / "scale.md", "ray.put("))
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
    recovered = len(re.findall(r"(?i)(actor|node|task).{0,80}(died|dead|restart|retr)", stderr))
    figures(
        f"ray, worker node killed ({killed} processes) at {killed_at:.0f} s: {len(rows)} rows, each once, "
        f"{recovered} lines on lost actors/tasks in the driver's log, job done at {time.monotonic() - started:.0f} s"
    )


def wait_for_files(folder: Path, pattern: str, job) -> None:
    """Until the job has written its first results (a fault then strikes mid-job)."""
    wait_for(lambda: any(folder.glob(pattern)), job)


def _holds(path: Path, text: str) -> bool:
    """``text`` is in the file at ``path`` (False when a task renamed or removed it meanwhile)."""
    try:
        return text in path.read_text()
    except OSError:
        return False


def wait_for(condition, job, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert job.poll() is None, f"the job ended ({job.returncode}) before the fault"
        assert time.monotonic() < deadline, f"the job did not get that far in {timeout:.0f} s"
        time.sleep(0.2)


SPARK_HOST_COLUMN = """import os
from pyspark.sql import functions as F
"""
HOST = 'F.udf(lambda: os.environ.get("CIFAR_PACK_TEST_HOST"))().alias("host"),'


def spark_job(tmp_path: Path) -> Path:
    """docs/scale.md's Spark job, with one more column: the host whose executor answered the row."""
    script = tmp_path / "predict_spark_cluster.py"
    block = doc_block(DOCS / "scale.md", "--files")
    script.write_text(SPARK_HOST_COLUMN + block.replace('files.select("path",', f'files.select("path", {HOST}'))
    return script


def spark_rows(folder: Path) -> list[dict]:
    return [{"path": r["path"], "host": r["host"], **r["prediction"]} for r in read_json_rows(folder, "part-*.json")]


def submit(cluster, model: Path, script: Path, photos: Path, out: Path) -> list:
    """docs/scale.md's spark-submit line, on the master's host."""
    return ["spark-submit", "--master", cluster.env["SPARK_MASTER"], "--conf", "spark.ui.enabled=false",
            "--files", model, script, photos, out]  # fmt: skip


def test_spark_job_on_two_hosts_ships_the_model_with_files(model_dir, tmp_path, figures):
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
    figures(f"spark on two hosts: {len(rows)} rows, each once, per host {per_host}, {time.monotonic() - started:.1f} s")
    assert per_host["a"] and per_host["b"]


def test_spark_job_finishes_every_row_once_when_a_worker_host_dies(model_dir, tmp_path, figures):
    """10,000 files in 8 partitions; once the first task has committed its output, every process
    of host "b" is killed (its worker and executor). Spark reruns the lost tasks on host "a"'s
    executor (an executor lost is not a task failure) and the output committer keeps each task's
    output once: every file exactly once, the CLI's answers."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    write_variants(photos, 10_000)
    want = cli_answers(photos, model_dir / "model.onnx")
    started = time.monotonic()
    with spark_cluster(hide=[model_dir]) as cluster:
        job = cluster.start_driver(submit(cluster, model_dir / "model.onnx", spark_job(tmp_path), photos, out))
        wait_for(lambda: any(_holds(p, '"host":"b"') for p in out.glob("_temporary/**/part-*")), job)
        killed = cluster.hosts.kill_all("b")  # mid-task: host b has written rows it has not committed
        killed_at = time.monotonic() - started
        stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stdout[-2000:] + stderr[-3000:]
    rows = spark_rows(out)
    assert_cli_answers(rows, want)
    lost = len(re.findall(r"Lost executor|ExecutorLostFailure|Removed executor", stderr))
    per_host = {h: sum(r["host"] == h for r in rows) for h in "ab"}
    figures(
        f"spark, host b killed ({killed} processes) at {killed_at:.0f} s: {len(rows)} rows, each once, "
        f"per host {per_host} (b's uncommitted rows redone on a), {lost} executor-loss lines in the driver's log, "
        f"done at {time.monotonic() - started:.0f} s"
    )


CHECK_REPLICAS = """
import ray
from ray import serve
ray.init()
handle = serve.get_app_handle("cifar10")
print(len({handle.node.remote().result() for _ in range(40)}))
"""


def test_ray_serve_on_two_hosts_answers_the_kserve_clients_of_the_docs(model_dir, tmp_path, figures):
    """docs/serving.md's Ray Serve deployment on the two-host cluster, one replica per node, the
    model's bytes through the object store; the docs' tritonclient HTTP program against the proxy
    of each node prints what its comment shows (as against `cifar-pack serve`), and a JSON request
    gets the probabilities `Predictor` computes (the suite's tolerance)."""
    from cifar_pack.runtime.predictor import Predictor

    deploy = tmp_path / "serve_on_ray.py"
    deploy.write_text(doc_block(DOCS / "serving.md", "KServeClassifier"))
    client = doc_block(DOCS / "serving.md", "tritonclient.http as httpclient")
    with ray_cluster(hide=[model_dir]) as cluster:
        proc = cluster.driver([sys.executable, deploy, model_dir / "model.onnx"], timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        replicas = cluster.driver([sys.executable, "-c", CHECK_REPLICAS], timeout=120)
        assert replicas.stdout.split()[-1:] == ["2"], replicas.stdout + replicas.stderr[-2000:]
        for host in "ab":
            url = f"{cluster.hosts.address(host)}:8000"
            run = cluster.driver([sys.executable, "-c", client.replace("127.0.0.1:8000", url)], timeout=120, cwd=ROOT)
            assert run.returncode == 0, run.stderr[-3000:]
            assert_prints_its_comment(client, run.stdout)
        json_run = cluster.driver(
            [sys.executable, "-c", JSON_CLIENT, cluster.hosts.address("b")], timeout=120, cwd=ROOT
        )
    assert json_run.returncode == 0, json_run.stderr[-3000:]
    got = np.array(json.loads(json_run.stdout))
    np.testing.assert_allclose(
        got, Predictor(BUNDLED).predict_proba(_samples_batch()), rtol=0, atol=FLOAT32_REORDER_ATOL
    )
    figures(f"ray serve on two hosts: 2 replicas on 2 nodes, the docs' client right on both proxies, {len(got)} rows")


JSON_CLIENT = """
import json, sys
import numpy as np
import tritonclient.http as httpclient
from PIL import Image
from pathlib import Path
paths = sorted(Path("artifacts/samples").glob("*.jpg"))[:8]
batch = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths])
images = httpclient.InferInput("images", list(batch.shape), "UINT8")
images.set_data_from_numpy(batch, binary_data=False)
client = httpclient.InferenceServerClient(sys.argv[1] + ":8000")
out = httpclient.InferRequestedOutput("probabilities", binary_data=False)
print(json.dumps(client.infer("cifar10", [images], outputs=[out]).as_numpy("probabilities").tolist()))
"""


def _samples_batch() -> np.ndarray:
    from PIL import Image

    paths = sorted((ROOT / "artifacts" / "samples").glob("*.jpg"))[:8]
    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in paths])


def train_on_two_hosts(cluster_hosts, data: Path, runs: Path, *extra: str, private: bool = True) -> list:
    """`cifar-pack train --strategy multi-worker` on both hosts, TF_CONFIG naming their addresses.
    ``private``: host "b" writes into its own ``runs`` (an empty folder only it sees), as a second
    machine would; else both see the chief's (a shared volume: what --resume needs on every worker)."""
    workers = [f"{cluster_hosts.address(h)}:{TRAIN_PORT}" for h in "ab"]
    processes = []
    for index, host in enumerate("ab"):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        command = [sys.executable, "-m", "cifar_pack", "train", "--data", data, "--out", runs / "run", "--strategy",
                   "multi-worker", "--recipe", "seed", "--batch-size", "16", "--json", *extra]  # fmt: skip
        env = os.environ | {"TF_CONFIG": json.dumps(tf_config)}
        processes.append(cluster_hosts.start(host, command, hide=[runs] if host == "b" and private else (), env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    return processes


def test_training_on_two_hosts_writes_one_run_that_resumes(tmp_path, figures):
    """Two workers on two hosts train 2 epochs as one cluster (the same all-reduced metrics in both
    logs); only the chief's host has the run; `--resume --epochs 3` continues it on both hosts."""
    data = write_class_folders(tmp_path / "data", {"train": 16})
    runs = tmp_path / "runs"
    runs.mkdir()
    started = time.monotonic()
    with hosts.TwoHosts("t") as two:
        outputs = [p.communicate(timeout=600) for p in train_on_two_hosts(two, data, runs, "--epochs", "2")]
        assert [p.returncode for p in two.processes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
        logs = [re.findall(r"epoch \d/2 .*val_acc [0-9.]+", err) for _, err in outputs]
        assert len(logs[0]) == 2 and logs[0] == logs[1], logs
        assert "the chief writes the run" in outputs[1][1]
        two.processes.clear()
        resume = train_on_two_hosts(two, data, runs, "--resume", "--epochs", "3", private=False)
        resumed = [p.communicate(timeout=600) for p in resume]
        assert [p.returncode for p in two.processes] == [0, 0], resumed[0][1][-2000:]
    history = json.loads((runs / "run" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    figures(f"training on two hosts: 2 epochs, resumed to 3, {time.monotonic() - started:.0f} s")


def test_training_on_two_hosts_stops_with_one_line_when_a_worker_dies(tmp_path, figures):
    """Host "b" killed after the chief logged epoch 1 of 20: the chief ends (no hang) with one line
    naming the lost worker and how to resume, and its run directory resumes."""
    data = write_class_folders(tmp_path / "data", {"train": 16})
    runs = tmp_path / "runs"
    runs.mkdir()
    with hosts.TwoHosts("k") as two:
        chief, worker = train_on_two_hosts(two, data, runs, "--epochs", "20")
        lines = []
        for line in chief.stderr:
            lines.append(line)
            if re.search(r"epoch 1/20 ", line):
                break
        two.kill_all("b")
        killed_at = time.monotonic()
        _, rest = chief.communicate(timeout=300)
        stopped_after = time.monotonic() - killed_at
    assert chief.returncode == 1 and "Traceback" not in rest, rest[-3000:]
    message = rest.strip().splitlines()[-1]
    expected = (
        r"error: a worker of the cluster stopped \(/job:worker/replica:0/task:1\) after epoch [1-9]\d*/20; "
        r"the run folder keeps it: start every worker again with --resume \(each needs the run folder\)"
    )
    assert re.fullmatch(expected, message), message
    state = json.loads((runs / "run" / "train_state.json").read_text())
    assert state["epochs_done"] >= 1 and not state["complete"]
    figures(
        f"training, worker killed after epoch 1: the chief stopped {stopped_after:.0f} s later with one line, "
        f"{state['epochs_done']} epochs kept for --resume"
    )
