"""Ray and Spark clusters across the two namespace hosts of ``hosts.TwoHosts``.

Host "a" is the head (Ray's GCS, Spark's master, the driver); host "b" is a worker node that
cannot see the folders in ``hide`` (the model's folder: what reaches it must come through the
engine) and has a private temporary folder (so nothing reaches it through /tmp either). Each
cluster is what its guide starts on two machines, with the ports and settings said here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .hosts import TwoHosts

RAY_PORT = 6379
SPARK_PORT = 7077
RAY_NODE_CPUS = 4
START_TIMEOUT_S = 120  # a node that has not joined by then has failed to start (a start takes ~5-20 s here)


@dataclass
class Cluster:
    hosts: TwoHosts
    env: dict[str, str]  # what a driver on host "a" needs (address, token, Python)
    worker_tmp: Path  # host "b"'s private temporary folder (empty to everyone else)

    def driver(self, args: Sequence[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
        """Run ``args`` on host "a" with the cluster's environment, output captured as text."""
        return self.hosts.run("a", args, env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs)

    def start_driver(self, args: Sequence[str]) -> subprocess.Popen:
        """``args`` on host "a" in the background (``communicate()`` for its output)."""
        return self.hosts.start("a", args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _private_tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="cp-b-tmp-"))


@contextmanager
def ray_cluster(hide: Sequence[Path] = (), nodes: int = 2) -> Iterator[Cluster]:
    """``ray start --head`` on "a", ``ray start --address`` on "b"; token authentication on (Ray's
    default for a head on a non-loopback address), the token in the environment of every node.
    Each node claims ``RAY_NODE_CPUS`` (both share this machine's cores): room on one node for two
    1-CPU actors and the reading beside them when the other dies (docs/scale.md). ``nodes=1``: the
    head alone (benchmarks compare it with two)."""
    hosts, worker_tmp = TwoHosts("r"), _private_tmp()
    temp_dirs = [Path(tempfile.mkdtemp(prefix="cp-ray-")) for _ in "ab"]  # short: Ray's socket paths
    head = f"{hosts.address('a')}:{RAY_PORT}"
    env = os.environ | {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    try:
        common = ["--disable-usage-stats", "--num-cpus", str(RAY_NODE_CPUS)]
        _check(hosts.run("a", ["ray", "start", "--head", "--node-ip-address", hosts.address("a"), "--port",
                               str(RAY_PORT), "--include-dashboard", "false", "--temp-dir", temp_dirs[0], *common],
                         env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S),
               "ray start --head")  # fmt: skip
        worker = ["ray", "start", "--address", head, "--node-ip-address", hosts.address("b"),
                  "--temp-dir", temp_dirs[1], *common]  # fmt: skip
        if nodes == 2:
            started = hosts.run("b", worker, hide=[*hide, worker_tmp], env=env | {"TMPDIR": str(worker_tmp)},
                                capture_output=True, text=True, timeout=START_TIMEOUT_S)  # fmt: skip
            _check(started, "ray start --address")
        yield Cluster(hosts, env | {"RAY_ADDRESS": head}, worker_tmp)
    finally:
        hosts.close()
        for folder in (*temp_dirs, worker_tmp):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def spark_cluster(hide: Sequence[Path] = (), nodes: int = 2) -> Iterator[Cluster]:
    """A standalone master and a worker on "a", a second worker on "b" (``spark-class ...Master`` /
    ``...Worker``, as ``sbin/start-master.sh`` and ``start-worker.sh`` run them), one core each,
    the executors' Python the driver's. ``CIFAR_PACK_TEST_HOST`` says in each executor which host it
    is. ``nodes=1``: host "a"'s worker alone, with both cores (benchmarks compare it with two)."""
    hosts, worker_tmp = TwoHosts("s"), _private_tmp()
    master = f"spark://{hosts.address('a')}:{SPARK_PORT}"
    env = os.environ | {"PYSPARK_PYTHON": sys.executable}
    logs = {h: worker_tmp.parent / f"{worker_tmp.name}-{h}.log" for h in "ab"}
    try:
        hosts.start("a", ["spark-class", "org.apache.spark.deploy.master.Master", "--host", hosts.address("a"),
                          "--port", str(SPARK_PORT)],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        for host in "ab"[:nodes]:
            own = {"CIFAR_PACK_TEST_HOST": host, "SPARK_LOCAL_IP": hosts.address(host)}
            if host == "b":
                own |= {"TMPDIR": str(worker_tmp), "SPARK_LOCAL_DIRS": str(worker_tmp)}
            with open(logs[host], "w") as log:
                hosts.start(host, ["spark-class", "org.apache.spark.deploy.worker.Worker", master, "--host",
                                   hosts.address(host), "--cores", str(3 - nodes), "--memory", "2g",
                                   *(["--work-dir", worker_tmp / "work"] if host == "b" else [])],
                            hide=[*hide, worker_tmp] if host == "b" else (), env=env | own,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        for host, path in list(logs.items())[:nodes]:
            _wait_for(
                lambda p=path: "Successfully registered with master" in p.read_text(), f"Spark's worker on {host}"
            )
        yield Cluster(hosts, env | {"SPARK_MASTER": master, "SPARK_LOCAL_IP": hosts.address("a")}, worker_tmp)
    finally:
        hosts.close()
        shutil.rmtree(worker_tmp, ignore_errors=True)
        for log in logs.values():
            log.unlink(missing_ok=True)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def _wait_for(condition, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
