"""`cifar-pack serve`: a real server process on a free local port, driven by NVIDIA's tritonclient
(a client nobody here wrote), by raw HTTP for /predict and broken requests, and stopped by SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cifar_pack.runtime.images import load_image
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor

from .conftest import FLOAT32_REORDER_ATOL, assert_one_line_error, run_cli
from .helpers.samples import SAMPLES
from .helpers.server import Server, multipart
from .snippets import assert_prints_its_comment, doc_commands

http_client = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is in the [dev] extra")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    # Each test file starts its own server, configured for what it tests: here small limits to
    # hit (2 s body timeout, 4 MB requests, 300 images).
    s = Server("--max-queue-delay-ms", "5", "--body-timeout-s", "2", "--max-request-mb", "4", "--max-images", "300")
    yield s
    assert s.stop() == 0, s.log  # SIGTERM: drain and exit 0, not uvicorn's re-raised 143
    assert "Traceback" not in s.log, s.log


def _batch(photos, n):
    return np.resize(photos, (n, 32, 32, 3))


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("n", [1, 256])
def test_tritonclient_infer_equals_predictor(server, photos, binary, n):
    client = http_client.InferenceServerClient(server.host)
    x = _batch(photos, n)
    tensor = http_client.InferInput("images", list(x.shape), "UINT8")
    tensor.set_data_from_numpy(x, binary_data=binary)
    out = http_client.InferRequestedOutput("probabilities", binary_data=binary)
    result = client.infer("cifar10", [tensor], outputs=[out])
    probs = result.as_numpy("probabilities")
    assert probs.shape == (n, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, Predictor().predict_proba(x), atol=FLOAT32_REORDER_ATOL)


def test_tritonclient_metadata_health_and_classification(server, photos):
    client = http_client.InferenceServerClient(server.host)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("cifar10")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("cifar10")
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 32, 32, 3]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    x = photos[:4]
    tensor = http_client.InferInput("images", list(x.shape), "UINT8")
    tensor.set_data_from_numpy(x)
    result = client.infer(
        "cifar10", [tensor], outputs=[http_client.InferRequestedOutput("probabilities", class_count=3)]
    )
    strings = result.as_numpy("probabilities")
    expected = Predictor().predict(x, top_k=3)
    assert strings.shape == (4, 3)
    for row, want in zip(strings, expected):
        got = [s.decode().split(":") for s in row]
        assert [g[2] for g in got] == [t["label"] for t in want["top_k"]]
        assert [int(g[1]) for g in got] == [t["index"] for t in want["top_k"]]
        assert float(got[0][0]) == pytest.approx(want["probability"], abs=FLOAT32_REORDER_ATOL)


def test_predict_endpoint_equals_the_cli(server):
    files = SAMPLES[:5]
    body, headers = multipart([(p.name, p.read_bytes()) for p in files])
    status, _, data = server.request("POST", "/predict?top_k=3", body, headers)
    assert status == 200, data
    items = json.loads(data)
    cli = json.loads(run_cli("predict", *files, "--top-k", "3", "--json").stdout)
    assert [i["path"] for i in items] == [p.name for p in files]
    for got, want in zip(items, cli):  # the same preprocessing as Predictor, so the same numbers
        assert [t["label"] for t in got["top_k"]] == [t["label"] for t in want["top_k"]]
        assert [t["probability"] for t in got["top_k"]] == pytest.approx(
            [t["probability"] for t in want["top_k"]], abs=FLOAT32_REORDER_ATOL
        )
    status, _, data = server.request(
        "POST", "/predict?filename=ship.jpg", SAMPLES[0].read_bytes(), {"Content-Type": "image/jpeg"}
    )
    assert status == 200 and json.loads(data)[0]["label"] == cli[0]["label"]


def test_a_bad_file_among_good_ones_gets_its_own_error(server):
    body, headers = multipart([("a.jpg", SAMPLES[0].read_bytes()), ("notes.txt", b"not an image")])
    status, _, data = server.request("POST", "/predict", body, headers)
    items = json.loads(data)
    assert status == 200 and "label" in items[0] and "not a readable image" in items[1]["error"]


def test_metrics_and_model_files(server):
    server.request("GET", "/v2/health/live")
    status, headers, data = server.request("GET", "/metrics")
    text = data.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in (
        "cifar_pack_requests_total",
        "cifar_pack_request_seconds_bucket",
        "cifar_pack_batch_size_bucket",
        "cifar_pack_queue_depth",
    ):
        assert name in text, name
    assert 'endpoint="/v2/health/live",protocol="http",status="200"' in text
    status, _, data = server.request("GET", "/model.onnx")
    assert status == 200 and data == BUNDLED_MODEL.read_bytes()
    status, _, data = server.request("GET", "/model.json")
    assert status == 200 and json.loads(data)["class_names"][3] == "cat"


def _png_bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 13000, 13000, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _binary_infer(count, payload: bytes, datatype="UINT8", name="images", size=None):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": [count, 32, 32, 3],
                    "parameters": {"binary_data_size": len(payload) if size is None else size},
                }
            ]
        }
    ).encode()
    return header + payload, {"Inference-Header-Content-Length": str(len(header))}


BROKEN = [
    (
        "truncated binary tensor",
        "/v2/models/cifar10/infer",
        *_binary_infer(2, bytes(3072 * 2 - 10), size=3072 * 2),
        400,
    ),
    ("huge declared shape", "/v2/models/cifar10/infer", *_binary_infer(10**9, bytes(3072)), 413),
    ("wrong datatype", "/v2/models/cifar10/infer", *_binary_infer(1, bytes(3072 * 4), datatype="FP32"), 400),
    ("wrong tensor name", "/v2/models/cifar10/infer", *_binary_infer(1, bytes(3072), name="input_1"), 400),
    ("header length past the body", "/v2/models/cifar10/infer", b"{}", {"Inference-Header-Content-Length": "99"}, 400),
    ("malformed JSON", "/v2/models/cifar10/infer", b'{"inputs": [', {}, 400),
    ("JSON nested 100k deep", "/v2/models/cifar10/infer", b"[" * 100_000 + b"]" * 100_000, {}, 400),
    (
        "JSON values out of range",
        "/v2/models/cifar10/infer",
        json.dumps(
            {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [300] * 3072}]}
        ).encode(),
        {},
        400,
    ),
    *[
        (  # numpy would read "7" as 7, 1.9 as 1, true as 1: UINT8 in JSON means integers
            f"JSON value {bad}",
            "/v2/models/cifar10/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": "images", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [bad] + [0] * 3071}
                    ]
                }
            ).encode(),
            {},
            400,
        )
        for bad in ("7", 1.9, True)
    ],
    ("unknown model", "/v2/models/nope/infer", b"{}", {}, 404),
    (
        "classification too large",
        "/v2/models/cifar10/infer",
        json.dumps(
            {
                "inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 32, 32, 3], "data": [0] * 3072}],
                "outputs": [{"name": "probabilities", "parameters": {"classification": 99}}],
            }
        ).encode(),
        {},
        400,
    ),
    ("body over the limit", "/v2/models/cifar10/infer", bytes(5 * 2**20), {}, 413),
    ("non-image upload", "/predict", b"just text", {"Content-Type": "image/png"}, 415),
    ("unsupported media type", "/predict", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ("image bomb", "/predict", _png_bomb(), {"Content-Type": "image/png"}, 400),
    ("bad top_k", "/predict?top_k=0", b"", {"Content-Type": "image/png"}, 400),
    ("no such route", "/v3/whatever", b"", {}, 404),
]


@pytest.mark.parametrize("what,path,body,headers,status", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_requests_get_a_4xx_json_error_and_the_server_lives_on(
    server, photos, what, path, body, headers, status
):
    got, response_headers, data = server.request("POST", path, body, headers)
    assert got == status, (what, got, data[:300])
    assert response_headers["content-type"] == "application/json" and json.loads(data)["error"], data[:300]
    client = http_client.InferenceServerClient(server.host)
    tensor = http_client.InferInput("images", [1, 32, 32, 3], "UINT8")
    tensor.set_data_from_numpy(photos[:1])
    assert client.infer("cifar10", [tensor]).as_numpy("probabilities").shape == (1, 10)


def test_a_slow_client_gets_408_and_does_not_block_others(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{")
    status, _, _ = server.request("GET", "/v2/health/ready")  # served while the slow body trickles
    assert status == 200
    sock.settimeout(10)
    reply = sock.recv(4096).decode(errors="replace")  # the body timeout is 2 s on this server
    assert " 408 " in reply.split("\r\n")[0], reply
    # The 408 closes the connection: a trickling client must not keep its slot for another request.
    assert "connection: close" in reply.lower(), reply
    while chunk := sock.recv(4096):  # the server closes its end: recv returns b"" (no 10 s timeout)
        assert len(chunk) < 4096
    sock.close()


def test_concurrent_requests_are_batched_and_a_full_queue_answers_503():
    s = Server("--max-queue-delay-ms", "300", "--max-queue-images", "40")
    try:
        photos = np.stack([load_image(p) for p in SAMPLES])
        statuses = []

        def one(i):
            status, headers, _ = s.request(
                "POST", "/v2/models/cifar10/infer", *_binary_infer(1, photos[i % 20].tobytes())
            )
            statuses.append((status, headers.get("retry-after")))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(48)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = sum(1 for st, _ in statuses if st == 200)
        busy = [(st, ra) for st, ra in statuses if st == 503]
        assert ok + len(busy) == 48 and ok >= 1 and all(ra == "1" for _, ra in busy), statuses
        metrics = s.request("GET", "/metrics")[2].decode()
        batches = float(re.search(r"^cifar_pack_batch_size_count (\S+)", metrics, re.M).group(1))
        images = float(re.search(r"^cifar_pack_batch_size_sum (\S+)", metrics, re.M).group(1))
        assert images == ok and batches < ok, (batches, ok)  # coalesced: fewer model calls than requests
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("instances", [1, 2])
def test_batches_run_at_most_instances_at_once_and_each_request_gets_its_rows(instances):
    import asyncio

    from cifar_pack.serve.batcher import DynamicBatcher

    running, most = [0], [0]
    lock = threading.Lock()

    def model(images: np.ndarray) -> np.ndarray:  # each row's answer is its own first pixel
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough that the next batch forms while this one runs
        with lock:
            running[0] -= 1
        return images[:, 0, 0, :1].astype(np.float32)

    async def main() -> list[np.ndarray]:
        batcher = DynamicBatcher(model, max_batch_size=4, max_queue_delay_ms=1, instances=instances)
        requests = [np.full((1 + i % 3, 32, 32, 3), i, np.uint8) for i in range(24)]
        answers = await asyncio.gather(*(batcher.infer(r) for r in requests))
        await batcher.close()
        return [a[:, 0] for a in answers], requests

    answers, requests = asyncio.run(main())
    assert [list(a) for a in answers] == [[i] * len(r) for i, r in enumerate(requests)]
    assert most[0] == instances  # 24 requests of 1-3 images in batches of 4 keep every instance busy


def test_a_server_with_two_instances_answers_each_client_with_its_own_probabilities(photos):
    s = Server("--instances", "2", "--max-batch-size", "4")
    try:
        results: dict[int, np.ndarray] = {}

        def one(i: int) -> None:
            client = http_client.InferenceServerClient(s.host)
            x = photos[i % 20][None]
            tensor = http_client.InferInput("images", [1, 32, 32, 3], "UINT8")
            tensor.set_data_from_numpy(x)
            results[i] = client.infer("cifar10", [tensor]).as_numpy("probabilities")[0]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = Predictor().predict_proba(photos)
        # Batches of 1-4 on one engine thread each against one batch of 20 on two: same sums, reordered
        assert sorted(results) == list(range(24))
        for i, probs in results.items():
            np.testing.assert_allclose(probs, expected[i % 20], atol=FLOAT32_REORDER_ATOL)
    finally:
        assert s.stop() == 0


def test_sigterm_finishes_the_request_in_flight():
    s = Server("--max-queue-delay-ms", "1500")
    result = {}
    photo = load_image(SAMPLES[0])

    def slow():
        result["status"] = s.request("POST", "/v2/models/cifar10/infer", *_binary_infer(1, photo.tobytes()))[0]

    thread = threading.Thread(target=slow)
    thread.start()
    s.wait_until_queued()  # the request waits in the batcher for its 1.5 s window
    assert s.stop() == 0
    thread.join()
    assert result["status"] == 200


def test_api_key_is_required_except_for_health():
    s = Server(env={"CIFAR_PACK_API_KEY": "s3cret"})
    try:
        assert s.request("GET", "/v2/health/live")[0] == 200
        status, headers, data = s.request("GET", "/v2/models/cifar10")
        assert status == 401 and "API key" in json.loads(data)["error"] and headers["www-authenticate"] == "Bearer"
        assert s.request("GET", "/v2/models/cifar10", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.request("GET", "/v2/models/cifar10", headers={"Authorization": "Bearer s3cret"})[0] == 200
        # The scheme is case-insensitive (RFC 7235); two Authorization headers are refused, not "last wins".
        assert s.request("GET", "/v2/models/cifar10", headers={"Authorization": "bearer s3cret"})[0] == 200
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.putrequest("GET", "/v2/models/cifar10")
        conn.putheader("Authorization", "Bearer wrong")
        conn.putheader("Authorization", "Bearer s3cret")
        conn.endheaders()
        assert conn.getresponse().status == 401
        conn.close()
        client = http_client.InferenceServerClient(s.host)
        assert client.get_model_metadata("cifar10", headers={"Authorization": "Bearer s3cret"})["name"] == "cifar10"
    finally:
        assert s.stop() == 0


def test_non_loopback_without_a_key_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "CIFAR_PACK_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "cifar_pack", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert_one_line_error(proc, "--host 0.0.0.0", "CIFAR_PACK_API_KEY", "--allow-unauthenticated", code=2)


def test_triton_repository_is_valid_and_served(exported, tiny_data, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    model = tmp_path / "tiny.onnx"
    model.write_bytes(exported.read_bytes())
    repo = tmp_path / "repo"
    proc = run_cli("export", "--model", model, "--int8", "--data", tiny_data, "--triton", repo, "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(Path(p).name for p in json.loads(proc.stdout)["triton"]) == ["tiny", "tiny_int8"]
    for name in ("tiny", "tiny_int8"):
        config = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert (config.name, config.backend, config.max_batch_size) == (name, "onnxruntime", 64)
        (inp,), (out,) = config.input, config.output
        assert (inp.name, inp.data_type, list(inp.dims)) == ("images", model_config_pb2.TYPE_UINT8, [32, 32, 3])
        assert (out.name, out.data_type, list(out.dims)) == ("probabilities", model_config_pb2.TYPE_FP32, [3])
        assert out.label_filename == "labels.txt" and config.dynamic_batching.max_queue_delay_microseconds == 2000
        assert (repo / name / "labels.txt").read_text().split() == ["blue", "green", "red"]
        assert (repo / name / "1" / "model.onnx").is_file()
    s = Server("--model-repository", repo)
    try:
        client = http_client.InferenceServerClient(s.host)
        x = np.full((2, 32, 32, 3), (220, 30, 40), np.uint8)
        for name in ("tiny", "tiny_int8"):
            tensor = http_client.InferInput("images", [2, 32, 32, 3], "UINT8")
            tensor.set_data_from_numpy(x)
            out = http_client.InferRequestedOutput("probabilities", class_count=1)
            assert client.infer(name, [tensor], outputs=[out]).as_numpy("probabilities")[0, 0].decode().endswith(":red")
    finally:
        assert s.stop() == 0


def test_curl_lines_of_the_readme_and_docs_work_as_written(server):
    lines = doc_commands(ROOT / "README.md", "curl ") + doc_commands(ROOT / "docs" / "serving.md", "curl ")
    lines = [line for line in lines if "/v2/repository/" not in line]  # model control: test_model_control.py
    assert len(lines) >= 4
    for line in lines:
        command = line.replace("127.0.0.1:8000", server.host)
        proc = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and json.loads(proc.stdout), (line, proc.stderr, proc.stdout[:300])
        assert "error" not in proc.stdout, (line, proc.stdout[:300])

    # A newcomer's first server call (the README's) gets a right answer.
    first = doc_commands(ROOT / "README.md", "curl ")[0]
    sample = re.search(r"samples/([a-z]+)_\d+\.jpg", first).group(1)
    proc = subprocess.run(first.replace("127.0.0.1:8000", server.host), shell=True, cwd=ROOT, capture_output=True)
    assert json.loads(proc.stdout)[0]["label"] == sample, proc.stdout


def test_docs_tritonclient_snippet_runs_as_written(server):
    snippet = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "serving.md").read_text(), flags=re.S).group(1)
    proc = subprocess.run(
        [sys.executable, "-c", snippet.replace("127.0.0.1:8000", server.host)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert_prints_its_comment(snippet, proc.stdout)


def test_docs_triton_export_from_an_onnx_runs_as_written(tmp_path):
    line = next(c for c in doc_commands(ROOT / "docs" / "serving.md", "cifar-pack export --model "))
    args = [a if a != "model_repository" else str(tmp_path / "repo") for a in line.split("#")[0].split()[1:]]
    proc = run_cli(*args, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "repo" / "cifar10" / "config.pbtxt").is_file()
    assert (tmp_path / "repo" / "cifar10" / "labels.txt").read_text().split()[3] == "cat"


def test_the_docs_examples_run_against_your_own_export_served_as_the_docs_say(exported, tmp_path):
    """after your own export, `artifacts/model.onnx` is served as `model`, and the
    docs' `/v2/models/cifar10` and tritonclient snippets got 404. docs/serving.md's line with
    `--model-name cifar10` serves it under the name the examples use."""
    line = next(c for c in doc_commands(ROOT / "docs" / "serving.md", "cifar-pack serve --model-name"))
    own = tmp_path / "artifacts" / "model.onnx"  # the file name your own export writes
    own.parent.mkdir()
    own.write_bytes(exported.read_bytes())
    s = Server("--model", own, *line.split("#")[0].split()[2:])
    try:
        status, _, body = s.request("GET", "/v2/models/cifar10")
        assert status == 200 and json.loads(body)["name"] == "cifar10", body
        assert s.request("GET", "/v2/models/model")[0] == 404  # one name, the one given
        snippet = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "serving.md").read_text(), flags=re.S).group(1)
        proc = subprocess.run(
            [sys.executable, "-c", snippet.replace("127.0.0.1:8000", s.host)], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert re.search(r":(blue|green|red)'", proc.stdout), proc.stdout  # the tiny model's own labels
    finally:
        assert s.stop() == 0, s.log


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--model-name", "a b"], "--model-name: 'a b' is not a model name"),
        (["--model-name", "x", "--model-repository", "."], "--model-name names a single --model"),
    ],
)
def test_a_bad_model_name_is_one_line_naming_the_option(args, fragment):
    assert_one_line_error(run_cli("serve", "--port", "0", *args), fragment, code=2)


def test_docs_kserve_inference_service_fits_the_repository_the_docs_export_writes(tmp_path):
    """docs/serving.md's InferenceService (KServe v1beta1): an ONNX model in the v2 protocol on the
    Triton runtime, stored as the folder the docs' `export --triton` command writes; each of that
    folder's `config.pbtxt` parses with Triton's ModelConfig schema as that ONNX model on onnxruntime."""
    import yaml
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    text = (ROOT / "docs" / "serving.md").read_text()
    (service,) = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert (model["modelFormat"]["name"], model["protocolVersion"], model["runtime"]) == (
        "onnx", "v2", "kserve-tritonserver"
    )  # fmt: skip
    folder = model["storageUri"].rstrip("/").rsplit("/", 1)[-1]
    command = next(c for c in doc_commands(ROOT / "docs" / "serving.md", "cifar-pack export --model"))
    assert command.split("#")[0].split()[-1] == folder  # the folder the docs export writes is the one stored
    proc = run_cli(*command.split("#")[0].split()[1:-1], tmp_path / folder, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    configs = sorted((tmp_path / folder).glob("*/config.pbtxt"))
    assert [c.parent.name for c in configs] == ["cifar10"]
    for path in configs:
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        assert (config.name, config.backend) == (path.parent.name, "onnxruntime")
        assert (path.parent / "1" / "model.onnx").is_file()  # Triton's <name>/<version>/model.onnx
        assert [i.name for i in config.input] == ["images"] and [o.name for o in config.output] == ["probabilities"]
