"""`cifar-pack serve` under attack: the hardening goals (docs/serving.md's limits), measured on a real server process.

    python benchmarks/exposed.py [--only A,B,...] [--json out.json]

Every case starts its own `python -m cifar_pack serve --port 0` on 127.0.0.1 and talks to it only
there. Memory is the server's peak resident set (/proc/PID/status VmHWM) and its current one
(VmRSS); CPU is the server's user+system seconds (/proc/PID/stat); "health" is the longest
`GET /v2/health/live` (a new connection each, every 0.1 s) while the case runs. A watchdog
stops a server past 6 GB (the machine has 24): such a case reads "> 6 GB (stopped)".
To measure an older version, run this script with that version first on PYTHONPATH.

A. 8 concurrent uploads of a 49 MP 16-bit PNG (~100 KB each); RSS 10 s after the last answer.
B. One multipart request with 40 such PNGs: status, server CPU seconds; then 4 of them sent and
   the connection closed at once: server CPU seconds in the 10 s after the client left.
C. 4 concurrent JSON infer bodies of 30 MB (and of 7.5 MB, under the JSON limit): status, health.
D. A 64 MB header line: status and seconds to the answer.
E. 300 connections that send nothing: how many the server has closed after 35 s.
F. A repository of 1,000 model folders (links to the bundled model): start-up result, peak RSS.
G. gRPC: 20,000 TCP connections to the gRPC port that never send a byte; peak open
   descriptors of the server, peak RSS, health, and whether a gRPC call is served afterwards.
H. gRPC: 4 concurrent ModelInfer calls of 31 M `uint_contents` values claiming one image: status, health.
I. A reload storm: 60 `load` calls of one repository model while a client infers over HTTP;
   RSS and threads before, at the peak and 10 s after; failed requests.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import Server, header, save

from cifar_pack.runtime.predictor import BUNDLED_MODEL
from tests.helpers.odd_images import sixteen_bit_png
from tests.helpers.server import multipart

LIMIT_MB = 6 * 1024


def status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watch:
    """Health latency every 0.1 s and a memory watchdog, in a thread, while a case runs."""

    def __init__(self, server: Server):
        self.server, self.worst, self.killed, self.stop = server, 0.0, False, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            if status_mb(self.server.proc.pid, "VmRSS") > LIMIT_MB:
                self.killed = True
                self.server.proc.kill()
                return
            started = time.perf_counter()
            try:
                conn = socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
                conn.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                while conn.recv(65536):
                    pass
                conn.close()
            except OSError:
                pass
            self.worst = max(self.worst, time.perf_counter() - started)
            time.sleep(0.1)

    def done(self) -> dict:
        self.stop.set()
        self.thread.join(timeout=60)
        pid = self.server.proc.pid
        peak = "> 6 GB (stopped)" if self.killed else f"{status_mb(pid, 'VmHWM'):,.0f} MB"
        return {"peak_rss": peak, "worst_health_s": round(self.worst, 2)}


def post(port: int, path: str, body: bytes, headers: dict, timeout: float = 300) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError as exc:
        return -1 if "reset" in str(exc).lower() else -2
    finally:
        conn.close()


def parallel(n: int, fn) -> list:
    results: list = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, fn())) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def case_a() -> dict:
    png, s = sixteen_bit_png(), Server()
    try:
        watch = Watch(s)
        statuses = parallel(8, lambda: post(s.port, "/predict?filename=a.png", png, {"Content-Type": "image/png"}))
        result = watch.done() | {"statuses": statuses}
        time.sleep(10)
        return result | {"rss_10s_after": f"{status_mb(s.proc.pid, 'VmRSS'):,.0f} MB"}
    finally:
        s.stop()


def case_b() -> dict:
    png, s = sixteen_bit_png(), Server()
    try:
        before = cpu_s(s.proc.pid)
        status = post(s.port, "/predict", *multipart([(f"{i}.png", png) for i in range(40)]))
        result = {"status_40": status, "cpu_s_40": round(cpu_s(s.proc.pid) - before, 1)}
        body, headers = multipart([(f"{i}.png", png) for i in range(4)])
        head = f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        conn = socket.create_connection(("127.0.0.1", s.port))
        conn.sendall(head.encode() + body)
        time.sleep(0.2)
        conn.close()
        left = cpu_s(s.proc.pid)
        time.sleep(10)
        return result | {"cpu_s_after_disconnect": round(cpu_s(s.proc.pid) - left, 1)}
    finally:
        s.stop()


def json_body(megabytes: float) -> bytes:
    n = int(megabytes * 2**20 / (3072 * 4))  # "255," is 4 bytes a value
    values = ",".join(["255"] * (n * 3072))
    return f'{{"inputs":[{{"name":"images","datatype":"UINT8","shape":[{n},32,32,3],"data":[{values}]}}]}}'.encode()


def case_c() -> dict:
    results = {}
    for mb in (30, 7.5):
        body, s = json_body(mb), Server("--max-images", "4096")
        try:
            watch = Watch(s)
            infer = lambda s=s, body=body: post(  # noqa: E731
                s.port, "/v2/models/cifar10/infer", body, {"Content-Type": "application/json"}
            )
            statuses = parallel(4, infer)
            results[f"{mb:g} MB"] = watch.done() | {"statuses": statuses}
        finally:
            s.stop()
    return results


def case_d() -> dict:
    s = Server()
    try:
        conn = socket.create_connection(("127.0.0.1", s.port), timeout=120)
        started = time.perf_counter()
        try:
            conn.sendall(
                b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (64 << 20) + b"\r\n\r\n"
            )
        except OSError:
            pass
        reply = conn.recv(200)
        conn.close()
        return {"status_line": reply.split(b"\r\n")[0].decode(), "seconds": round(time.perf_counter() - started, 2)}
    finally:
        s.stop()


def case_e() -> dict:
    s = Server()
    try:
        socks = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(300)]
        for sock in socks:
            sock.setblocking(False)
        time.sleep(35)
        closed = 0
        for sock in socks:
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            sock.close()
        return {"closed_after_35s": f"{closed} of 300"}
    finally:
        s.stop()


def case_f() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1000):
            (Path(tmp) / f"m{i:04d}" / "1").mkdir(parents=True)
            os.symlink(BUNDLED_MODEL, Path(tmp) / f"m{i:04d}" / "1" / "model.onnx")
        cmd = [sys.executable, "-m", "cifar_pack", "serve", "--port", "0", "--model-repository", tmp]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        started, peak, outcome = time.perf_counter(), 0.0, "running after 120 s"
        while time.perf_counter() - started < 120:
            peak = max(peak, status_mb(proc.pid, "VmRSS") if proc.poll() is None else 0)
            if peak > LIMIT_MB:
                outcome = "> 6 GB (stopped)"
                break
            if proc.poll() is not None:
                outcome = f"exit {proc.returncode}: {proc.stderr.read().strip().splitlines()[-1][:160]}"
                break
            time.sleep(0.2)
        proc.kill()
        proc.wait()
        return {"outcome": outcome, "seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(peak)}


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def threads(pid: int) -> int:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Threads:"))
        return int(line.split()[1])
    except (OSError, StopIteration):
        return -1


def case_g() -> dict:
    import resource

    import tritonclient.grpc as grpc_client

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this client's 20,000 sockets
    server = Server("--grpc-port", "0")
    host, port = server.grpc.rsplit(":", 1)
    watch, socks, peak_fds, peak_rss, refused = Watch(server), [], 0, 0.0, 0
    for i in range(20_000):
        try:
            socks.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:
            refused += 1
        if i % 1000 == 0:  # read while this process has descriptors left to read /proc with
            peak_fds, peak_rss = max(peak_fds, fds(server.proc.pid)), max(peak_rss, status_mb(server.proc.pid, "VmHWM"))
    time.sleep(5)
    peak_fds = max(peak_fds, fds(server.proc.pid))
    result = watch.done() | {"peak_fds": peak_fds, "peak_rss_mb_while_open": round(peak_rss), "connect_errors": refused}
    for sock in socks:
        sock.close()
    time.sleep(2)
    try:
        result["grpc_call_after"] = grpc_client.InferenceServerClient(server.grpc).is_server_live()
    except Exception as exc:  # noqa: BLE001 - the outcome is the figure
        result["grpc_call_after"] = type(exc).__name__
    server.stop()
    return result


def case_h() -> dict:
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    server = Server("--grpc-port", "0")
    watch = Watch(server)
    tensor = service_pb2.ModelInferRequest().InferInputTensor(name="images", datatype="UINT8", shape=[1, 32, 32, 3])
    tensor.contents.uint_contents.extend(np.ones(31_000_000, np.uint32).tolist())
    request = service_pb2.ModelInferRequest(model_name="cifar10", inputs=[tensor])
    options = [("grpc.max_send_message_length", -1)]

    def call() -> str:
        with grpc.insecure_channel(server.grpc, options=options) as channel:
            try:
                service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=120)
                return "OK"
            except grpc.RpcError as exc:
                return exc.code().name

    statuses = parallel(4, call)
    result = watch.done() | {"statuses": statuses}
    server.stop()
    return result


def case_i() -> dict:
    import http.client

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cifar10" / "1").mkdir(parents=True)
        os.symlink(BUNDLED_MODEL, Path(tmp) / "cifar10" / "1" / "model.onnx")
        server = Server("--model-repository", tmp, "--model-control-mode", "explicit")
        pid, stop, statuses = server.proc.pid, threading.Event(), []
        body = json.dumps(
            {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [0] * 3072}]}
        ).encode()

        def infer_loop() -> None:
            while not stop.is_set():
                statuses.append(post(server.port, "/v2/models/cifar10/infer", body, {}))

        before = {"rss_mb": round(status_mb(pid, "VmRSS")), "threads": threads(pid)}
        clients = [threading.Thread(target=infer_loop) for _ in range(3)]
        for t in clients:
            t.start()
        peak_threads = 0
        for _ in range(60):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            conn.request("POST", "/v2/repository/models/cifar10/load")
            conn.getresponse().read()
            conn.close()
            peak_threads = max(peak_threads, threads(pid))
        stop.set()
        for t in clients:
            t.join()
        time.sleep(10)
        after = {"rss_mb": round(status_mb(pid, "VmRSS")), "threads": threads(pid)}
        peak = {"rss_mb": round(status_mb(pid, "VmHWM")), "threads": peak_threads}
        failed = sum(1 for s in statuses if s != 200)
        server.stop()
        return {"before": before, "peak": peak, "after_10_s": after, "requests": len(statuses), "failed": failed}


CASES = {"A": case_a, "B": case_b, "C": case_c, "D": case_d, "E": case_e, "F": case_f}
CASES |= {"G": case_g, "H": case_h, "I": case_i}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    info = header("serve under attack", __doc__.split("\n\n", 1)[1].strip().replace("\n", " "), ("uvicorn",))
    results = {}
    for name in args.only.split(","):
        results[name] = CASES[name]()
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    save(args.json, info | {"results": results})


if __name__ == "__main__":
    main()
