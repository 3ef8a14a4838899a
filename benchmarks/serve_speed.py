"""`cifar-pack serve` throughput and latency against in-process onnxruntime, on one machine.

    python benchmarks/serve_speed.py [--requests 640] [--clients 32] [--json out.json]

The server runs as its own process on 127.0.0.1 (a free port). The load generator is `wrk`
(Debian's package) when installed: 32 keep-alive connections on 2 threads for 8 s, a C client that
leaves the 2 cores to the server; else threads of this process, each with one keep-alive
connection, bounded by a request count and a 120 s deadline per phase. All images are the 20
quick-start samples, decoded once. Phases:
1. tritonclient binary infer, batch 256, one client, 20 requests, vs `Predictor.predict_proba`
   on the same batch in-process (goal: >= 0.8x).
2. 32 clients each sending single images as binary tensors: dynamic batching (--max-batch-size
   64, --max-queue-delay-ms 2) vs --max-batch-size 1, alternated twice, medians (goal: >= 2x);
   p50/p99 latency.
3. 32 clients posting one JPEG each to /predict vs in-process `Predictor.predict(paths)` on the
   same files in batches of 32 (goal: >= 0.3x); p50/p99 latency.
Client and server share the machine's 2 cores, so the server is measured with its load generator.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shlex
import statistics
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from _common import Server, header, save

from tests.helpers.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[1]


def load(port, make_request, requests, clients, deadline_s=120.0):
    """Send ``requests`` requests from ``clients`` threads; (images/s, latencies in ms, statuses)."""
    latencies, statuses, lock = [], [], threading.Lock()
    counter = iter(range(requests))
    stop_at = time.perf_counter() + deadline_s

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < stop_at:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            method, path, body, headers = make_request(i)
            t = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                latencies.append(1000 * (time.perf_counter() - t))
                statuses.append(response.status)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - started), latencies, statuses


def wrk_load(port: int, path: str, body: bytes, headers: dict, seconds: int = 8, clients: int = 32):
    """{images_per_s, p50_ms, p99_ms, non_2xx} from wrk (one image a request), or None without wrk."""
    import shutil
    import tempfile

    if shutil.which("wrk") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.bin").write_bytes(body)
        lines = ['wrk.method = "POST"', f'local f = io.open("{tmp}/body.bin", "rb")', "wrk.body = f:read('*all')"]
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
        (Path(tmp) / "s.lua").write_text("\n".join(lines) + "\n")
        cmd = ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", f"{tmp}/s.lua"]
        out = subprocess.run(
            [*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=seconds + 60
        ).stdout

    def ms(label):
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "images_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "load_generator": "wrk",
    }


def pct(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def summary(rate, latencies, statuses) -> dict:
    return {
        "images_per_s": rate,
        "p50_ms": pct(latencies, 50),
        "p99_ms": pct(latencies, 99),
        "ok": statuses.count(200),
        "requests": len(statuses),
    }


def binary_infer(images: np.ndarray):
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "datatype": "UINT8",
                    "shape": list(images.shape),
                    "parameters": {"binary_data_size": images.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return head + images.tobytes(), {"Inference-Header-Content-Length": str(len(head))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--server-args", default="", help="more `serve` options for every server, e.g. --server-args=--spin"
    )
    args = parser.parse_args()
    Server.extra = tuple(shlex.split(args.server_args))

    import tritonclient.http as triton

    from cifar_pack.runtime.images import load_image
    from cifar_pack.runtime.predictor import Predictor

    info = header("serve speed", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "))
    photos = np.stack([load_image(p) for p in SAMPLES])
    batch = np.ascontiguousarray(np.resize(photos, (256, 32, 32, 3)))
    predictor = Predictor()
    results = {}

    # -- 1. batch 256, one client ------------------------------------------------------------
    server = Server()
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        tensor = triton.InferInput("images", list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch, binary_data=True)
        client.infer("cifar10", [tensor])  # warm-up
        predictor.predict_proba(batch)
        served, local = [], []
        for _ in range(20):  # interleaved, so machine noise hits both alike
            t = time.perf_counter()
            client.infer("cifar10", [tensor])
            served.append(time.perf_counter() - t)
            t = time.perf_counter()
            predictor.predict_proba(batch)
            local.append(time.perf_counter() - t)
        results["batch256"] = {
            "tritonclient_images_per_s": 256 / statistics.median(served),
            "in_process_images_per_s": 256 / statistics.median(local),
        }
        results["batch256"]["ratio"] = statistics.median(local) / statistics.median(served)

        # -- 3. /predict with JPEG files (same server) -----------------------------------------
        files = [p.read_bytes() for p in SAMPLES]
        path = f"/predict?filename={SAMPLES[0].name}"
        measured = wrk_load(server.port, path, files[0], {"Content-Type": "image/jpeg"}, clients=args.clients)
        if measured is None:
            rate, lat, st = load(
                server.port,
                lambda i: ("POST", path, files[i % 20], {"Content-Type": "image/jpeg"}),
                args.requests,
                args.clients,
            )
            measured = summary(rate, lat, st) | {"load_generator": "python threads"}
        paths = [SAMPLES[i % 20] for i in range(args.requests)]
        t = time.perf_counter()
        for i in range(0, len(paths), 32):
            predictor.predict(paths[i : i + 32])
        in_process = len(paths) / (time.perf_counter() - t)
        results["predict_jpeg"] = measured | {
            "in_process_images_per_s": in_process,
            "ratio": measured["images_per_s"] / in_process,
        }
    finally:
        server.stop()

    # -- 2. single images, dynamic batching vs none (alternated twice: the machine is noisy) ------
    singles = [binary_infer(photos[i : i + 1]) for i in range(20)]
    infer = "/v2/models/cifar10/infer"
    runs = {"batched": [], "unbatched": []}
    for _ in range(2):
        for label, extra in (("batched", ["--max-batch-size", "64"]), ("unbatched", ["--max-batch-size", "1"])):
            server = Server(*extra, "--max-queue-delay-ms", "2")
            try:
                measured = wrk_load(server.port, infer, *singles[0], clients=args.clients)
                if measured is None:
                    load(server.port, lambda i: ("POST", infer, *singles[i % 20]), 64, args.clients)
                    rate, lat, st = load(
                        server.port, lambda i: ("POST", infer, *singles[i % 20]), args.requests, args.clients
                    )
                    measured = summary(rate, lat, st) | {"load_generator": "python threads"}
                runs[label].append(measured)
            finally:
                server.stop()
    for label, measured in runs.items():
        medians = {key: statistics.median(m[key] for m in measured) for key in ("images_per_s", "p50_ms", "p99_ms")}
        results[f"single_{label}"] = medians | {"runs": measured}
    results["single_ratio"] = results["single_batched"]["images_per_s"] / results["single_unbatched"]["images_per_s"]

    b, s, j = results["batch256"], results, results["predict_jpeg"]
    print(f"load generator: {j['load_generator']}")
    print(
        f"1. batch 256, tritonclient binary: {b['tritonclient_images_per_s']:,.0f} img/s vs in-process "
        f"{b['in_process_images_per_s']:,.0f}: {b['ratio']:.2f}x (goal >= 0.8)"
    )
    print(
        f"2. {args.clients} clients x single images: batched {s['single_batched']['images_per_s']:,.0f} img/s "
        f"(p50 {s['single_batched']['p50_ms']:.1f} ms, p99 {s['single_batched']['p99_ms']:.1f} ms) vs max-batch 1 "
        f"{s['single_unbatched']['images_per_s']:,.0f} (p50 {s['single_unbatched']['p50_ms']:.1f}, p99 "
        f"{s['single_unbatched']['p99_ms']:.1f}): {s['single_ratio']:.2f}x (goal >= 2)"
    )
    print(
        f"3. {args.clients} clients x JPEG to /predict: {j['images_per_s']:,.0f} img/s "
        f"(p50 {j['p50_ms']:.1f} ms, "
        f"p99 {j['p99_ms']:.1f} ms) vs in-process predict {j['in_process_images_per_s']:,.0f}: {j['ratio']:.2f}x "
        "(goal >= 0.3)"
    )
    save(args.json, info | {"results": results})


if __name__ == "__main__":
    main()
