"""The Node.js example (examples/node) gives the Python Predictor's answers.

PNG is lossless, so Node sees exactly the pixels Pillow sees and, with the ported resize, feeds the
model the same bytes. JPEG is decoded by sharp, i.e. libjpeg-turbo with its default settings, the
library and settings Pillow uses, so JPEGs must agree as closely: within 1e-5 for both formats.
(jpeg-js, the pure-JavaScript decoder used before, disagreed on top-1 for 1 of the 20 samples.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime.images import load_image
from cifar_pack.runtime.predictor import Predictor

from .conftest import COLOURS, make_images

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "node"
pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
    pytest.mark.skipif(
        not (EXAMPLE / "node_modules" / "onnxruntime-node").exists(),
        reason="run `npm install --ignore-scripts` in examples/node first",
    ),
]


def run_node(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["node", str(EXAMPLE / "predict.mjs"), *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("node_images")
    paths = []
    for i, (name, colour) in enumerate(COLOURS.items()):
        base = make_images(1, colour, 200 + i)[0]
        big = Image.fromarray(base).resize((71 + 13 * i, 47 + 9 * i), Image.Resampling.NEAREST)
        paths.append(root / f"{name}-resized.png")
        big.save(paths[-1])
        paths.append(root / f"{name}-32.png")
        Image.fromarray(base).save(paths[-1])
    rgba = np.dstack([make_images(1, (220, 30, 40), 9)[0], np.linspace(0, 255, 32 * 32).reshape(32, 32)])
    paths.append(root / "alpha.png")
    Image.fromarray(rgba.astype(np.uint8), "RGBA").resize((45, 45)).save(paths[-1])
    paths.append(root / "grey.png")
    Image.fromarray(make_images(1, (30, 200, 40), 3)[0]).convert("L").resize((100, 20)).save(paths[-1])
    return paths


def test_node_matches_predictor_on_png(exported, images):
    proc = run_node("--model", exported, "--json", "--top-k", "3", *images)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    predictor = Predictor(exported)
    for node_result, path in zip(results, images):
        expected = predictor.predict(path)[0]
        py_probs = predictor.predict_proba(load_image(path))[0]
        assert node_result["label"] == expected["label"], path
        np.testing.assert_allclose(node_result["probabilities"], py_probs, atol=1e-5, rtol=0, err_msg=str(path))
        assert node_result["top_k"][0]["label"] == expected["label"]


def _assert_node_equals_python(model, paths) -> None:
    proc = run_node("--model", model, "--json", *paths)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == len(paths)  # all of it: the JSON of many files is not cut off at 64 KB
    python = Predictor(model).predict_proba(np.stack([load_image(p) for p in paths]))
    for node_result, expected, path in zip(results, python, paths):
        np.testing.assert_allclose(node_result["probabilities"], expected, atol=1e-5, rtol=0, err_msg=str(path))


def test_node_matches_predictor_on_jpeg(exported, tmp_path):
    """4:2:0 and 4:4:4 chroma, odd sizes, greyscale, EXIF rotation, an ICC profile: as Pillow decodes them."""
    paths = []
    for i, (name, colour) in enumerate(COLOURS.items()):
        img = Image.fromarray(make_images(1, colour, 300 + i)[0]).resize((67 + 10 * i, 45), Image.Resampling.BICUBIC)
        for subsampling in (0, 2):
            paths.append(tmp_path / f"{name}-{subsampling}.jpg")
            img.save(paths[-1], quality=85, subsampling=subsampling)
    paths.append(tmp_path / "grey.jpg")
    Image.open(paths[0]).convert("L").save(paths[-1], quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    paths.append(tmp_path / "sideways.jpg")
    Image.open(paths[1]).save(paths[-1], quality=90, exif=exif)
    from PIL import ImageCms  # an embedded profile that is not sRGB: Pillow ignores it, so must Node

    paths.append(tmp_path / "profiled.jpg")
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.open(paths[2]).save(paths[-1], quality=90, icc_profile=lab)
    _assert_node_equals_python(exported, paths)


def test_node_matches_predictor_on_the_sample_and_real_jpegs(tmp_path):
    """The quick-start photos, and 300 real CIFAR-10 JPEGs from the shared archive where it is present."""
    bundled = Path(__file__).resolve().parents[1] / "cifar_pack" / "pretrained" / "cifar10.onnx"
    samples = sorted((EXAMPLE.parents[1] / "artifacts" / "samples").glob("*.jpg"))
    _assert_node_equals_python(bundled, samples)
    archive = EXAMPLE.parents[2] / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
    if not archive.exists():
        pytest.skip(f"the shared CIFAR-10 archive is not at {archive} (the samples above were compared)")
    real = []
    with tarfile.open(archive) as tar:
        for i, member in enumerate(m for m in tar if m.name.endswith(".jpg")):
            if i % 166 == 0:
                real.append(tmp_path / member.name.replace("/", "_"))
                real[-1].write_bytes(tar.extractfile(member).read())
    assert len(real) >= 300
    _assert_node_equals_python(bundled, real)


def test_node_bad_inputs(exported, images, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    proc = run_node("--model", exported, images[0], tmp_path / "missing.png", text)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'missing.png'}: no such file", f"error: {text}: not a PNG or JPEG image"]
    assert proc.stdout.count("\n") == 1  # the good image is still classified
    missing_model = run_node("--model", tmp_path / "none.onnx", images[0])
    assert missing_model.returncode == 1 and missing_model.stderr.startswith("error: ")


RESIZE_SCRIPT = """
import fs from "node:fs";
import { resizeBilinear } from "%s";
const out = {};
for (const [name, w, h] of JSON.parse(fs.readFileSync(process.argv[2], "utf8"))) {
  const rgb = new Uint8Array(fs.readFileSync(`${process.argv[3]}/${name}.raw`));
  out[name] = Buffer.from(resizeBilinear({ width: w, height: h, data: rgb }).data).toString("base64");
}
console.log(JSON.stringify(out));
"""


def test_the_shared_resize_is_pillows_byte_for_byte(tmp_path):
    """preprocess.mjs (the page's and Node's resize) against Pillow on every kind of shape: wide, tall
    (Pillow 13 runs the vertical pass first when the height shrinks most), tiny, enlarged, one row."""
    import base64

    page = EXAMPLE.parents[1] / "cifar_pack" / "serve" / "page" / "preprocess.mjs"
    rng = np.random.default_rng(0)
    sizes = [(45, 67), (67, 45), (33, 100), (100, 33), (40, 44), (32, 200), (200, 32), (7, 9), (1, 50), (50, 1)]
    sizes += [(32, 32), (31, 33), (64, 64), (640, 480), (480, 640), (97, 61), (61, 97), (33, 66), (33, 67)]
    shapes = []
    for w, h in sizes:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        (tmp_path / f"{w}x{h}.raw").write_bytes(rgb.tobytes())
        shapes.append((f"{w}x{h}", w, h))
    (tmp_path / "shapes.json").write_text(json.dumps(shapes))
    script = tmp_path / "resize.mjs"
    script.write_text(RESIZE_SCRIPT % page.as_uri())
    proc = subprocess.run(
        ["node", str(script), str(tmp_path / "shapes.json"), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for name, w, h in shapes:
        rgb = np.frombuffer((tmp_path / f"{name}.raw").read_bytes(), np.uint8).reshape(h, w, 3)
        want = np.asarray(Image.fromarray(rgb).resize((32, 32), Image.Resampling.BILINEAR))
        node = np.frombuffer(base64.b64decode(got[name]), np.uint8).reshape(32, 32, 3)
        assert np.array_equal(node, want), (name, int(np.abs(node.astype(int) - want).max()))
