"""`cifar-pack serve --grpc-port`: KServe v2 over gRPC, driven by NVIDIA's tritonclient.grpc itself.

A real server process; the same service as HTTP (one batcher, limits, API key, metrics). A broken
request matrix sent as raw protobuf messages (what tritonclient will not build) checks each status
code, and a good inference after each.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time

import numpy as np
import pytest

from cifar_pack.runtime.predictor import Predictor

from .conftest import FLOAT32_REORDER_ATOL
from .helpers.samples import SAMPLES
from .helpers.server import GrpcServer, multipart, triton_images
from .snippets import assert_prints_its_comment

grpc_client = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is in the [dev] extra")
grpc = pytest.importorskip("grpc", reason="grpcio is in the [serve] extra")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402


@pytest.fixture(scope="module")
def server():
    # Each test file starts its own server, configured for what it tests: here HTTP and gRPC on one process.
    s = GrpcServer("--max-images", "300", "--max-request-mb", "4", "--max-queue-delay-ms", "5")
    yield s
    assert s.stop() == 0, s.log  # SIGTERM drains both transports and exits 0
    assert "Traceback" not in s.log, s.log


def test_health_metadata_and_inference_equal_predictor_and_http(server, photos):
    client = grpc_client.InferenceServerClient(server.grpc)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cifar10")
    meta = client.get_model_metadata("cifar10", as_json=True)
    assert meta["inputs"][0] == {"name": "images", "datatype": "UINT8", "shape": ["-1", "32", "32", "3"]}
    assert client.get_server_metadata().name == "cifar-pack"
    expected = Predictor().predict_proba(photos)
    for batch in (photos[:1], np.resize(photos, (256, 32, 32, 3))):
        got = client.infer("cifar10", triton_images(batch)).as_numpy("probabilities")
        want = Predictor().predict_proba(batch)
        np.testing.assert_allclose(got, want, atol=FLOAT32_REORDER_ATOL, rtol=0)
    status, _, body = server.request(
        "POST",
        "/v2/models/cifar10/infer",
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "images",
                        "datatype": "UINT8",
                        "shape": [20, 32, 32, 3],
                        "data": photos.reshape(-1).tolist(),
                    }
                ]
            }
        ),
    )
    http_probs = np.array(json.loads(body)["outputs"][0]["data"]).reshape(20, -1)
    grpc_probs = client.infer("cifar10", triton_images(photos)).as_numpy("probabilities")
    assert (
        status == 200 and np.abs(http_probs - grpc_probs).max() <= 1e-6 and np.abs(grpc_probs - expected).max() <= 1e-6
    )
    top3 = client.infer(
        "cifar10", triton_images(photos[:2]), outputs=[grpc_client.InferRequestedOutput("probabilities", class_count=3)]
    ).as_numpy("probabilities")
    label = Predictor().predict(photos[:1])[0]["label"]
    assert top3.shape == (2, 3) and top3[0][0].decode().endswith(f":{label}")


def _raw_request(**changes) -> service_pb2.ModelInferRequest:
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="images", datatype="UINT8", shape=[1, 32, 32, 3])
    request = service_pb2.ModelInferRequest(model_name="cifar10", inputs=[tensor], raw_input_contents=[bytes(3072)])
    for key, value in changes.items():
        if key == "datatype":
            request.inputs[0].datatype = value
        elif key == "shape":
            del request.inputs[0].shape[:]
            request.inputs[0].shape.extend(value)
        elif key == "raw":
            request.raw_input_contents[0] = value
        else:
            setattr(request, key, value)
    return request


@pytest.mark.parametrize(
    "changes,code",
    [
        ({"datatype": "FP32"}, "INVALID_ARGUMENT"),
        ({"shape": [1, 3, 32, 32]}, "INVALID_ARGUMENT"),
        ({"raw": bytes(3000)}, "INVALID_ARGUMENT"),  # truncated raw contents
        ({"model_name": "nope"}, "NOT_FOUND"),
        ({"shape": [301, 32, 32, 3], "raw": bytes(301 * 3072)}, "RESOURCE_EXHAUSTED"),  # over --max-images
        ({"shape": [1400, 32, 32, 3], "raw": bytes(1400 * 3072)}, "RESOURCE_EXHAUSTED"),  # over --max-request-mb
        # Junk under --max-request-mb (4 MB) but over what 300 images can take (2.8 MB): refused by
        # grpcio's message limit, before the server holds it.
        ({"raw": bytes(3_500_000)}, "RESOURCE_EXHAUSTED"),
    ],
)
def test_broken_requests_get_the_right_status_and_the_server_goes_on(server, photos, changes, code):
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(_raw_request(**changes), timeout=30)
        assert info.value.code().name == code, info.value.details()
        good = stub.ModelInfer(_raw_request(raw=photos[0].tobytes()), timeout=30)
        assert good.outputs[0].shape == [1, 10]


def test_metrics_count_grpc_requests_with_their_protocol(server, photos):
    client = grpc_client.InferenceServerClient(server.grpc)
    client.infer("cifar10", triton_images(photos[:1]))
    _, _, body = server.request("GET", "/metrics")
    text = body.decode()
    assert 'cifar_pack_requests_total{endpoint="ModelInfer",protocol="grpc",status="OK"}' in text
    assert 'protocol="http"' in text


def test_api_key_is_required_on_grpc_too():
    s = GrpcServer(env={"CIFAR_PACK_API_KEY": "s3cret"})
    try:
        client = grpc_client.InferenceServerClient(s.grpc)
        assert client.is_server_live()  # health is public, as on HTTP
        with pytest.raises(grpc_client.InferenceServerException, match="UNAUTHENTICATED"):
            client.is_model_ready("cifar10")
        batch = np.zeros((1, 32, 32, 3), np.uint8)
        wrong = {"authorization": "Bearer nope"}
        with pytest.raises(grpc_client.InferenceServerException, match="UNAUTHENTICATED"):
            client.infer("cifar10", triton_images(batch), headers=wrong)
        ok = client.infer("cifar10", triton_images(batch), headers={"authorization": "Bearer s3cret"})
        assert ok.as_numpy("probabilities").shape == (1, 10)
        # Refused calls to made-up methods: the metric label comes from the service's method names,
        # so 200 long names add one "unknown" series, not 200 (the path is the client's to choose).
        with grpc.insecure_channel(s.grpc) as channel:
            for i in range(200):
                call = channel.unary_unary(f"/inference.GRPCInferenceService/Made{i:03d}" + "x" * 2000)
                with pytest.raises(grpc.RpcError) as info:
                    call(b"", timeout=10)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        metrics = s.request("GET", "/metrics", headers={"Authorization": "Bearer s3cret"})[2].decode()
        assert "Made0" not in metrics and len(metrics) < 200_000, metrics[-3000:]
        assert re.search(r'endpoint="unknown",protocol="grpc",status="UNAUTHENTICATED"} 200\.0', metrics), metrics[
            -3000:
        ]
    finally:
        assert s.stop() == 0, s.log


def test_docs_grpc_snippet_runs_as_written(server):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    blocks = re.findall(r"```python\n(.*?)```", (root / "docs" / "serving.md").read_text(), flags=re.S)
    snippet = next(b for b in blocks if "tritonclient.grpc" in b)
    proc = subprocess.run(
        [sys.executable, "-c", snippet.replace("127.0.0.1:8001", server.grpc)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert_prints_its_comment(snippet, proc.stdout)


def test_model_config_and_statistics_on_both_transports(server, photos):
    client = grpc_client.InferenceServerClient(server.grpc)
    client.infer("cifar10", triton_images(photos[:3]))
    config = client.get_model_config("cifar10", as_json=True)["config"]
    assert config["input"][0]["data_type"] == "TYPE_UINT8" and config["output"][0]["dims"] == ["10"]
    status, _, body = server.request("GET", "/v2/models/cifar10/config")
    assert status == 200 and json.loads(body)["max_batch_size"] == int(config["max_batch_size"])
    stats = client.get_inference_statistics("cifar10", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) >= 3 and int(stats["inference_stats"]["success"]["count"]) >= 1
    status, _, body = server.request("GET", "/v2/models/cifar10/stats")
    http_stats = json.loads(body)["model_stats"][0]
    assert status == 200 and http_stats["inference_count"] >= int(stats["inference_count"])


def test_a_busy_grpc_port_is_one_line_before_anything_is_served():
    """'serving ... at http://', gRPC's own 'Failed to add port' log, then the error."""
    import socket
    import subprocess
    import sys

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        cmd = [sys.executable, "-m", "cifar_pack", "serve", "--port", "0", "--grpc-port", str(port)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        busy.close()
    assert proc.returncode == 2, proc.stderr
    assert f"--grpc-port {port}: cannot listen there" in proc.stderr
    assert "serving" not in proc.stderr and "add_port" not in proc.stderr and "Traceback" not in proc.stderr


def test_grpc_connections_are_capped_while_http_answers():
    """20,000 idle gRPC connections took every descriptor; HTTP probes were reset."""
    import socket

    s = GrpcServer("--max-connections", "5")
    host, port = s.grpc.rsplit(":", 1)
    socks = [socket.create_connection((host, int(port)), timeout=30) for _ in range(20)]  # TCP only, no call

    def closed_by_server(sock: socket.socket) -> bool:
        sock.settimeout(2)
        try:
            while chunk := sock.recv(4096):  # a connection within the cap gets the server's HTTP/2 SETTINGS
                if len(chunk) < 4096:
                    return False
            return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    try:
        assert s.request("GET", "/v2/health/ready")[0] == 200  # the HTTP port is not starved
        closed = sum(closed_by_server(sock) for sock in socks)
        assert closed == 15, closed  # past --max-connections 5: closed at accept
    finally:
        for sock in socks:
            sock.close()
    try:
        # Room again once they leave: the server counts a connection out when it sees the close,
        # which may come after the client's close returns, so ask until it answers (at most 30 s).
        deadline, live = time.monotonic() + 30, False
        while not live and time.monotonic() < deadline:
            try:
                live = grpc_client.InferenceServerClient(s.grpc).is_server_live()
            except grpc_client.InferenceServerException:
                time.sleep(0.2)
        assert live
    finally:
        assert s.stop() == 0, s.log


def test_a_thousand_concurrent_calls_on_one_channel_all_succeed(server):
    """354 of 3,000 concurrent calls on one channel came back CANCELLED; with a
    stream limit of 100, most of 1,000 were refused. Up to the advertised 1,000 streams, every call
    is served (the server's queue holds 4,096 images)."""
    import asyncio
    import collections

    request = _raw_request()

    async def run() -> collections.Counter:
        async with grpc.aio.insecure_channel(server.grpc) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            await stub.ModelInfer(request, timeout=60)  # connected, settings exchanged

            async def one() -> str:
                try:
                    await stub.ModelInfer(request, timeout=120)
                    return "OK"
                except grpc.RpcError as exc:
                    return exc.code().name

            return collections.Counter(await asyncio.gather(*(one() for _ in range(1000))))

    assert asyncio.run(run()) == {"OK": 1000}


def test_sigterm_answers_every_grpc_and_http_call_in_flight(photos):
    """SIGTERM drains HTTP, then gRPC, and only then closes the batchers both use: every call is
    answered or refused as UNAVAILABLE (before, calls that came during the HTTP drain got UNKNOWN
    "cannot schedule new futures after shutdown", and the process took the whole grace period)."""
    s = GrpcServer("--max-queue-delay-ms", "200")
    outcomes: list[str] = []
    http_statuses: list[int] = []

    def grpc_calls(i: int) -> None:
        client = grpc_client.InferenceServerClient(s.grpc)
        for _ in range(400):  # bounded: the server stops long before
            try:
                client.infer("cifar10", triton_images(photos[i : i + 1]), client_timeout=60)
                outcomes.append("OK")
            except grpc_client.InferenceServerException as exc:
                outcomes.append(str(exc.status()))
                if "UNAVAILABLE" in str(exc.status()):
                    return  # the server has stopped taking calls: a refusal, not a lost answer

    def http_call(i: int) -> None:
        body, headers = multipart([(f"{i}.jpg", SAMPLES[i].read_bytes())])
        http_statuses.append(s.request("POST", "/predict", body, headers, timeout=60)[0])

    threads = [threading.Thread(target=grpc_calls, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=http_call, args=(i,)) for i in range(8, 12)]
    for t in threads:
        t.start()
    s.wait_until_queued(images=8)  # calls are flowing through the batcher when SIGTERM comes
    s.proc.send_signal(signal.SIGTERM)
    # A hang limit, not a speed figure: calls left unanswered would hold the exit for the whole
    # 30 s grace period (they did: 31 s), a clean drain takes about a second.
    try:
        assert s.proc.wait(timeout=20) == 0, s.log
    finally:
        s.proc.kill()  # no-op once it has exited; ends it when it hung
    s.reader.join(timeout=60)
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    wrong = [o for o in outcomes if o != "OK" and "UNAVAILABLE" not in o]
    assert not wrong and outcomes.count("OK") >= 8, outcomes
    assert http_statuses == [200] * 4, http_statuses
    assert "Traceback" not in s.log, s.log
