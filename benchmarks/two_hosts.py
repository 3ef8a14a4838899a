"""Ray Data and Spark on one namespace node vs two, on the same cores: what the network costs.

    sudo python benchmarks/two_hosts.py [--images 10000] [--json out.json]

The jobs of docs/scale.md's two-host sections (Ray: the model through the object store, two
1-CPU actors; Spark: spark-submit --files, one executor core per worker, two cores in one worker
for one node) on `--images` JPEGs made from the quick-start samples, on clusters made as
tests/test_two_hosts.py makes them (tests/helpers/clusters.py): one node = host "a" alone; two
nodes = host "a" and host "b" joined by a veth pair. Both share this machine's cores, so two nodes
are not more compute: the ratio says what going through the network and a second node's
processes cost (or save), not how a real cluster scales. Seconds are the driver's whole run
(connecting, shipping the model, reading, classifying, writing), cluster start-up excluded;
images/s = images / seconds. Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, header, save

from tests.helpers.clusters import ray_cluster, spark_cluster
from tests.helpers.samples import write_variants
from tests.snippets import doc_block

BUNDLED = ROOT / "cifar_pack" / "pretrained" / "cifar10.onnx"
SCALE_DOC = ROOT / "docs" / "scale.md"


def ray_job(work: Path, photos: Path, model: Path, nodes: int) -> float:
    script = work / "ray_job.py"
    script.write_text(doc_block(SCALE_DOC, "ray.put("))
    out = work / f"ray-{nodes}"
    with ray_cluster(hide=[model.parent], nodes=nodes) as cluster:
        started = time.perf_counter()
        proc = cluster.driver([sys.executable, script, model, photos, out], timeout=900)
        seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    return seconds


def spark_job(work: Path, photos: Path, model: Path, nodes: int) -> float:
    script = work / "spark_job.py"
    script.write_text(doc_block(SCALE_DOC, "--files"))
    out = work / f"spark-{nodes}"
    with spark_cluster(hide=[model.parent], nodes=nodes) as cluster:
        command = ["spark-submit", "--master", cluster.env["SPARK_MASTER"], "--conf", "spark.ui.enabled=false",
                   "--files", model, script, photos, out]  # fmt: skip
        started = time.perf_counter()
        proc = cluster.driver(command, timeout=900)
        seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--json")
    args = parser.parse_args()
    info = header("two hosts", __doc__.split("\n\n")[2].replace("\n", " "), ("ray", "pyspark"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="two-hosts-") as scratch:
        work = Path(scratch)
        photos, model = work / "photos", work / "model" / "model.onnx"
        write_variants(photos, args.images)
        model.parent.mkdir()
        shutil.copy(BUNDLED, model)
        for engine, job in (("ray", ray_job), ("spark", spark_job)):
            one, two = (job(work, photos, model, nodes) for nodes in (1, 2))
            rows.append({"engine": engine, "one_node_s": one, "two_nodes_s": two, "images": args.images})
            print(f"{engine:5}  one node {one:6.1f} s ({args.images / one:6.0f} images/s)   two nodes {two:6.1f} s "
                  f"({args.images / two:6.0f} images/s)   two/one images/s {one / two:.2f}x", flush=True)  # fmt: skip
    save(args.json, info | {"rows": rows})


if __name__ == "__main__":
    main()
