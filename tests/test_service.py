"""The service core in process, no transport: what kserve's test_dataplane.py does for its DataPlane.

``InferenceService`` over the bundled model (and a two-model repository for model control), one
instance per test class and one event loop it lives in; each test awaits the core's calls the way
the HTTP and gRPC transports do, and checks the typed errors they map. The subprocess tests
(test_serve.py, test_grpc.py) prove the wire; these prove the core alone.
"""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the server is the [serve] extra")

from cifar_pack.runtime.images import load_image  # noqa: E402
from cifar_pack.runtime.predictor import BUNDLED_MODEL, Predictor  # noqa: E402
from cifar_pack.serve import errors  # noqa: E402
from cifar_pack.serve.config import Batching, ModelControl  # noqa: E402
from cifar_pack.serve.core import InferenceService  # noqa: E402
from cifar_pack.serve.repository import Repository, load_models, write_repository  # noqa: E402

from .conftest import FLOAT32_REORDER_ATOL  # noqa: E402
from .helpers.samples import SAMPLES  # noqa: E402


class Loop:
    """One event loop for a test class: the service's batchers and queues belong to it."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable):
        return self.loop.run_until_complete(awaitable)

    def close(self, service: InferenceService) -> None:
        self.run(service.close())
        self.loop.close()


class TestOneModel:
    @pytest.fixture(scope="class")
    def core(self):
        loop = Loop()

        async def build() -> InferenceService:
            served, _ = load_models(BUNDLED_MODEL, None)
            return InferenceService(served, batching=Batching(max_batch_size=8, max_queue_delay_ms=1), api_key="k3y")

        service = loop.run(build())
        yield loop, service
        loop.close(service)

    def test_infer_gives_the_predictors_probabilities(self, core):
        loop, service = core
        images = np.stack([load_image(p) for p in SAMPLES[:5]])
        probs = loop.run(service.infer(service.model("cifar10"), images))
        want = Predictor(BUNDLED_MODEL).predict_proba(images)
        # the batcher's onnxruntime session and a fresh Predictor's: the same file, the suite's rule
        np.testing.assert_allclose(probs, want, atol=FLOAT32_REORDER_ATOL, rtol=0)
        stats = service.model_statistics(service.model("cifar10"))["model_stats"][0]
        assert stats["inference_count"] >= 5 and stats["inference_stats"]["success"]["count"] >= 1

    def test_unknown_model_or_version_is_not_found(self, core):
        _, service = core
        with pytest.raises(errors.NotFound, match="unknown model 'nope'; served: cifar10"):
            service.model("nope")
        with pytest.raises(errors.NotFound, match="no version '7'"):
            service.model("cifar10", "7")
        assert service.model("cifar10", "1").name == "cifar10"

    def test_uploads_answer_each_file_and_refuse_a_request_of_none(self, core):
        loop, service = core
        uploads = [("cat.jpg", SAMPLES[0].read_bytes()), ("notes.txt", b"not an image")]
        answers = loop.run(service.classify_uploads(uploads, top_k=3))
        assert answers[0]["path"] == "cat.jpg" and len(answers[0]["top_k"]) == 3
        assert answers[1]["path"] == "notes.txt" and "not a readable image" in answers[1]["error"]
        with pytest.raises(errors.UnsupportedMedia, match="no readable image"):
            loop.run(service.classify_uploads([("a.txt", b"text")], top_k=1))
        with pytest.raises(errors.InvalidInput, match="top_k must be in 1..10"):
            service.check_top_k(11)

    def test_api_key_scheme_is_case_insensitive_and_the_key_exact(self, core):
        _, service = core
        assert service.authorized(b"Bearer k3y") and service.authorized(b"bearer k3y")
        assert not service.authorized(b"Bearer K3Y") and not service.authorized(b"Basic k3y")
        assert not service.authorized(b"Bearer k3y2")

    def test_metadata_and_config_describe_the_served_model(self, core):
        _, service = core
        m = service.model("cifar10")
        assert service.model_metadata(m)["inputs"][0] == {
            "name": "images",
            "datatype": "UINT8",
            "shape": [-1, 32, 32, 3],
        }
        assert service.model_config(m)["max_batch_size"] == 8
        assert "model_repository" in service.server_metadata()["extensions"]

    def test_model_control_without_a_repository_says_how_to_get_one(self, core):
        loop, service = core
        with pytest.raises(errors.InvalidInput, match="--model-repository"):
            service.repository_index()
        with pytest.raises(errors.InvalidInput, match="model control is off"):
            loop.run(service.load("cifar10"))


class TestModelControl:
    @pytest.fixture(scope="class")
    def core(self, tmp_path_factory):
        folder = tmp_path_factory.mktemp("control")
        for name in ("first", "second"):
            shutil.copyfile(BUNDLED_MODEL, folder / f"{name}.onnx")
        root = folder / "repo"
        write_repository([folder / "first.onnx", folder / "second.onnx"], root)
        loop = Loop()

        async def build() -> InferenceService:
            served, failures = load_models(None, root)
            repository = Repository(root, ModelControl.explicit, failures=failures)
            return InferenceService(
                served, batching=Batching(max_batch_size=4, max_queue_delay_ms=1), repository=repository
            )

        service = loop.run(build())
        yield loop, service, root
        loop.close(service)

    def test_unload_then_infer_with_the_model_already_looked_up_is_not_found(self, core):
        """An HTTP infer looks its model up, then awaits its body: an unload in between was a KeyError 500."""
        loop, service, _ = core
        looked_up = service.model("second")
        loop.run(service.unload("second"))
        with pytest.raises(errors.NotFound, match="'second' was unloaded"):
            loop.run(service.infer(looked_up, np.zeros((1, 32, 32, 3), np.uint8)))
        index = {m["name"]: m["state"] for m in service.repository_index()}
        assert index == {"first": "READY", "second": "UNAVAILABLE"}
        loop.run(service.load("second"))
        assert loop.run(service.infer(service.model("second"), np.zeros((1, 32, 32, 3), np.uint8))).shape == (1, 10)

    def test_the_last_model_cannot_be_unloaded_and_unknown_folders_are_not_found(self, core):
        loop, service, _ = core
        loop.run(service.unload("second"))
        with pytest.raises(errors.InvalidInput, match="last one served"):
            loop.run(service.unload("first"))
        with pytest.raises(errors.NotFound, match="no model folder 'third'"):
            loop.run(service.load("third"))
        loop.run(service.load("second"))

    def test_a_folder_that_fails_to_load_leaves_its_reason_in_the_index(self, core):
        loop, service, root = core
        (root / "broken" / "1").mkdir(parents=True)
        (root / "broken" / "1" / "model.onnx").write_bytes(b"not a model")
        with pytest.raises(errors.InvalidInput, match="model 'broken' failed to load"):
            loop.run(service.load("broken"))
        (entry,) = [m for m in service.repository_index() if m["name"] == "broken"]
        assert entry["state"] == "UNAVAILABLE" and "broken/1/model.onnx" in entry["reason"]
        assert str(root) not in entry["reason"]  # clients are not told where the files are kept
