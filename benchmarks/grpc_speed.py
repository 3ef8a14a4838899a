"""`cifar-pack serve --grpc-port`: gRPC against HTTP and in-process onnxruntime, and a reload under load.

    python benchmarks/grpc_speed.py [--seconds 8] [--clients 32] [--json out.json]

One server process on 127.0.0.1 (free ports) serving both transports; the clients are this
process: tritonclient for batch 256, and for many single-image clients grpc.aio calls in flight
at once (one event loop, no thread per client, so the client costs the 2 cores as little as it
can), each call a raw ModelInferRequest. Phases:
0. One client's first single-image call right after the server reports ready, against the p50 of
   its next 50 (the warm-up's goal: <= 2x).
1. batch 256, one client, 20 requests: tritonclient.grpc vs tritonclient.http (binary) vs
   `Predictor.predict_proba` in-process, interleaved (goal: gRPC >= 0.9x in-process).
2. 32 concurrent gRPC single-image calls for --seconds: dynamic batching (--max-batch-size 64,
   --max-queue-delay-ms 2) vs --max-batch-size 1 (goal: >= 2x); p50/p99 latency.
3. The same load on a repository server with model control: p99 in steady state, then while the
   model is reloaded three times (each a new session, built and warmed before the swap): failed
   requests (goal: 0) and p99 during the reloads (goal: <= 3x steady).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import Server, header, save

from tests.helpers.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[1]


def median_rate(call, images: int, rounds: int = 20) -> float:
    call()  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return images / statistics.median(times)


def first_request(server: Server, image: np.ndarray, after: int = 50) -> dict:
    """The first single-image call once the server says it is ready, against the p50 of the next ``after``."""
    import tritonclient.grpc as g

    client = g.InferenceServerClient(server.grpc)
    assert client.is_server_ready() and client.is_model_ready("cifar10")
    tensor = g.InferInput("images", [1, 32, 32, 3], "UINT8")
    tensor.set_data_from_numpy(image[None])
    times = []
    for _ in range(after + 1):
        started = time.perf_counter()
        client.infer("cifar10", [tensor])
        times.append(time.perf_counter() - started)
    return {"first_ms": times[0] * 1000, "steady_p50_ms": statistics.median(times[1:]) * 1000}


def batch_256(server: Server, batch: np.ndarray, rounds: int = 20) -> dict:
    """gRPC and HTTP interleaved against the same server (in-process is measured with no server up)."""
    import tritonclient.grpc as g
    import tritonclient.http as h

    gc, hc = g.InferenceServerClient(server.grpc), h.InferenceServerClient(server.http)
    gi = g.InferInput("images", list(batch.shape), "UINT8")
    gi.set_data_from_numpy(batch)
    hi = h.InferInput("images", list(batch.shape), "UINT8")
    hi.set_data_from_numpy(batch, binary_data=True)
    calls = {
        "grpc": lambda: gc.infer("cifar10", [gi]),
        "http": lambda: hc.infer("cifar10", [hi]),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return {name: len(batch) / statistics.median(t) for name, t in times.items()}


async def load(target: str, image: bytes, clients: int, seconds: float, during=None) -> dict:
    """``clients`` single-image calls kept in flight for ``seconds``; ``during`` runs meanwhile (in a thread)."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="images", datatype="UINT8", shape=[1, 32, 32, 3])
    request = service_pb2.ModelInferRequest(model_name="cifar10", inputs=[tensor], raw_input_contents=[image])
    latencies, failures, stop = [], [], time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        async def client() -> None:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                try:
                    await stub.ModelInfer(request, timeout=30)
                    latencies.append(time.perf_counter() - started)
                except grpc.RpcError as exc:
                    failures.append(exc.code().name)

        worker = threading.Thread(target=during) if during else None
        if worker:
            worker.start()
        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
        if worker:
            worker.join()
    ms = np.array(latencies) * 1000
    return {
        "images_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests": len(latencies) + len(failures),
        "failed": failures,
    }


def reload_under_load(image: bytes, clients: int, seconds: float) -> dict:
    import urllib.request

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cifar_pack",
                "export",
                "--model",
                str(ROOT / "cifar_pack/pretrained/cifar10.onnx"),
                "--triton",
                str(repo),
            ],
            check=True,
            capture_output=True,
        )
        server = Server("--grpc-port", "0", "--model-repository", str(repo), "--model-control-mode", "explicit")
        try:
            steady = asyncio.run(load(server.grpc, image, clients, seconds))
            shutil.copytree(repo / "cifar10" / "1", repo / "cifar10" / "2")

            def reloads() -> None:
                for _ in range(3):
                    time.sleep(seconds / 4)
                    url = f"http://{server.http}/v2/repository/models/cifar10/load"
                    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=60).read()

            during = asyncio.run(load(server.grpc, image, clients, seconds, during=reloads))
        finally:
            server.stop()
    return {"steady": steady, "during_reloads": during}


def compare_loads(configs: list[str], image: bytes, clients: int, seconds: float, rounds: int = 2) -> None:
    """Phase 2 only, for each server configuration (`serve` options), alternated ``rounds`` times;
    medians, and each as a ratio of the first (one run, so the machine's noise hits all alike)."""
    rates: dict[str, list[float]] = {c: [] for c in configs}
    for _ in range(rounds):
        for config in configs:
            server = Server("--grpc-port", "0", *shlex.split(config))
            try:
                rates[config].append(asyncio.run(load(server.grpc, image, clients, seconds))["images_per_s"])
            finally:
                server.stop()
    first = statistics.median(rates[configs[0]])
    for config, r in rates.items():
        print(
            f"{clients} gRPC clients, serve {config or '(defaults)'}: {statistics.median(r):,.0f} img/s "
            f"({statistics.median(r) / first:.2f}x the first; rounds {', '.join(f'{x:,.0f}' for x in r)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--server-args", default="", help="more `serve` options for every server, e.g. --server-args=--spin"
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        help="only phase 2, for each `serve` option string (repeat): --compare='' --compare='--instances 2'",
    )
    args = parser.parse_args()
    Server.extra = tuple(shlex.split(args.server_args))
    import grpc

    from cifar_pack.runtime.images import load_image

    info = header("gRPC speed", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    from importlib.metadata import version

    print(f"grpcio {grpc.__version__}, tritonclient {version('tritonclient')}")
    photos = np.stack([load_image(p) for p in SAMPLES])
    batch = np.ascontiguousarray(np.resize(photos, (256, 32, 32, 3)))
    image = photos[0].tobytes()
    if args.compare:
        compare_loads(args.compare, image, args.clients, args.seconds)
        return
    from cifar_pack.runtime.predictor import Predictor

    predictor = Predictor()  # before any server runs: its idle threads would take the cores' time
    in_process = median_rate(lambda: predictor.predict_proba(batch), len(batch))
    results = {}
    server = Server("--grpc-port", "0")
    try:
        results["first_request"] = first_request(server, photos[0])
        results["batch_256"] = batch_256(server, batch) | {"in-process": in_process}
        results["batched"] = asyncio.run(load(server.grpc, image, args.clients, args.seconds))
    finally:
        server.stop()
    server = Server("--grpc-port", "0", "--max-batch-size", "1")
    try:
        results["unbatched"] = asyncio.run(load(server.grpc, image, args.clients, args.seconds))
    finally:
        server.stop()
    results["reload"] = reload_under_load(image, args.clients, args.seconds)
    f = results["first_request"]
    print(
        f"0. first request after ready: {f['first_ms']:.2f} ms vs steady p50 {f['steady_p50_ms']:.2f} ms: "
        f"{f['first_ms'] / f['steady_p50_ms']:.2f}x (goal <= 2, the warm-up's job)"
    )
    b = results["batch_256"]
    print(
        f"1. batch 256: gRPC {b['grpc']:,.0f} img/s, HTTP {b['http']:,.0f}, in-process {b['in-process']:,.0f}: "
        f"gRPC {b['grpc'] / b['in-process']:.2f}x in-process (goal >= 0.9), {b['grpc'] / b['http']:.2f}x HTTP"
    )
    on, off = results["batched"], results["unbatched"]
    print(
        f"2. {args.clients} gRPC clients x single images: batched {on['images_per_s']:,.0f} img/s "
        f"(p50 {on['p50_ms']:.1f} ms, p99 {on['p99_ms']:.1f}) vs max-batch 1 {off['images_per_s']:,.0f} "
        f"(p50 {off['p50_ms']:.1f}, p99 {off['p99_ms']:.1f}): "
        f"{on['images_per_s'] / off['images_per_s']:.2f}x (goal >= 2)"
    )
    steady, during = results["reload"]["steady"], results["reload"]["during_reloads"]
    print(
        f"3. reload x3 under {args.clients} clients: {len(during['failed'])} failed of {during['requests']} (goal 0); "
        f"p99 {during['p99_ms']:.1f} ms vs steady {steady['p99_ms']:.1f}: "
        f"{during['p99_ms'] / steady['p99_ms']:.2f}x (goal <= 3)"
    )
    save(args.json, info | {"results": results})


if __name__ == "__main__":
    main()
