"""Test servers: `cifar-pack serve` in a subprocess on 127.0.0.1 (port 0), and request bodies for it.

Imported by the test files that need a real server process; no test file imports another.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time


class Server:
    """`python -m cifar_pack serve --port 0 ...` in a subprocess; the URL read from its stderr."""

    def __init__(self, *args, env: dict | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cifar_pack", "serve", "--port", "0", *map(str, args)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.log = ""
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            assert line, self.log + self.proc.stderr.read()
            self.log += line
            if match := re.search(r"at http://(?:[0-9.]+|\[[0-9a-f:]+\]):(\d+)", line):
                self.port = int(match.group(1))
                break
        self.host = f"127.0.0.1:{self.port}"
        # The rest of stderr, read by the same buffered file as the lines above: communicate() reads
        # the descriptor itself and would miss lines already sitting in this file's buffer.
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log += line

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, dict(response.getheaders()), data

    def wait_until_queued(self, images: int = 1, model: str = "cifar10", timeout: float = 30) -> None:
        """Until ``images`` wait in ``model``'s batcher queue, read from /metrics (not a sleep and a hope)."""
        want = f'cifar_pack_queue_depth{{model="{model}"}} {float(images)}'
        deadline = time.time() + timeout
        while want not in self.request("GET", "/metrics")[2].decode():
            assert time.time() < deadline, f"no request queued within {timeout} s"
            time.sleep(0.05)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=60)
        return self.proc.returncode


class GrpcServer(Server):
    """The HTTP server's helper, plus the gRPC port read from the same log."""

    def __init__(self, *args, env: dict | None = None):
        super().__init__("--grpc-port", "0", *args, env=env)
        for _ in range(600):  # the log is read by the helper's thread; wait at most 60 s for the line
            if match := re.search(r"GRPCInferenceService\) at 127\.0\.0\.1:(\d+)", self.log):
                break
            assert self.proc.poll() is None, self.log
            time.sleep(0.1)
        else:
            raise AssertionError(f"no gRPC port in the log: {self.log}")
        self.grpc = f"127.0.0.1:{match.group(1)}"


def multipart(files: list[tuple[str, bytes]], boundary="cifarpackboundary") -> tuple[bytes, dict]:
    parts = []
    for name, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def triton_images(batch):
    """A (N, 32, 32, 3) uint8 batch as tritonclient.grpc's one input, "images"."""
    import tritonclient.grpc as grpc_client

    tensor = grpc_client.InferInput("images", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    return [tensor]
