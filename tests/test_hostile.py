"""Hostile and awkward inputs: each ends in one line and a non-zero exit, or is processed
correctly, in bounded memory. Commands run in a child whose address space is capped at 1 GiB
(RLIMIT_AS), so an input that makes the code allocate gigabytes fails the test; the subprocess
timeout guards against hangs (it asserts nothing about speed).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from cifar_pack.runtime import data, images, inputs
from cifar_pack.runtime.errors import DataError

from .conftest import assert_one_line_error, make_images, write_class_folders
from .helpers.odd_images import huge_png
from .helpers.streams import Zeros

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "artifacts" / "samples" / "cat_1444.jpg"
GiB = 2**30


def run_limited(*args, memory: int = GiB, timeout: float = 60, env: dict | None = None, cwd=None):
    """``cifar-pack ARGS`` in a child limited to ``memory`` bytes of address space."""
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))\n"
        "from cifar_pack.cli import main\n"
        "sys.argv = ['cifar-pack', *sys.argv[1:]]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def load_limited(source, memory: int = GiB) -> subprocess.CompletedProcess:
    """``data.load(source)`` in a capped child; prints the classes and split sizes as JSON."""
    code = (
        "import json, resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))\n"
        "from cifar_pack.runtime import data\nfrom cifar_pack.runtime.errors import DataError\n"
        "try:\n    ds = data.load(sys.argv[1], use_cache=False)\n"
        "except DataError as exc:\n    print('error:', exc, file=sys.stderr); sys.exit(1)\n"
        "print(json.dumps({'classes': ds.class_names, 'splits': {k: len(v[1]) for k, v in ds.splits.items()}}))\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------
# Data (--data)


def test_tar_of_dot_loads(tmp_path):
    """`tar czf d.tar.gz -C dir .` starts with a "./" member."""
    folder = write_class_folders(tmp_path / "dir", {"train": 3})
    archive = tmp_path / "d.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(folder), "."], check=True)
    assert tarfile.open(archive).getnames()[0] in (".", "./")
    ds = data.load(archive, use_cache=False)
    assert ds.class_names == ["blue", "green", "red"] and len(ds.split("train")[1]) == 9


def test_hidden_folder_with_a_dot_slash_prefix_is_still_hidden(tmp_path):
    """`./.secret/x.jpg` used to lose its dot to a redundant lstrip and become a class."""
    folder = write_class_folders(tmp_path / "dir", {"train": 2})
    (folder / ".secret").mkdir()
    Image.fromarray(make_images(1, (0, 0, 0), 1)[0]).save(folder / ".secret" / "x.png")
    archive = tmp_path / "d.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(folder), "."], check=True)
    assert data.load(archive, use_cache=False).class_names == ["blue", "green", "red"]


class _ZeroStrideArray:
    """Pickles as numpy.ndarray(shape, uint8, 1-byte buffer, 0, strides=0): only allowed names."""

    def __init__(self, rows: int, width: int = 3072):
        self.rows, self.width = rows, width

    def __reduce__(self):
        return np.ndarray, ((self.rows, self.width), np.dtype(np.uint8), b"\x00", 0, (0, 0))


@pytest.mark.parametrize("rows", [500_000, 30_000_000, 10_000])
def test_pickle_batch_claiming_more_pixels_than_its_bytes_is_refused(tmp_path, rows):
    """A few hundred bytes describing gigabytes of images."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": _ZeroStrideArray(rows), b"labels": _ZeroStrideArray(rows, 1)}
    blob = pickle.dumps(batch, protocol=2)
    assert len(blob) < 1000
    (folder / "data_batch_1").write_bytes(blob)
    proc = load_limited(folder)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "data_batch_1" in proc.stderr and ("3072)" in proc.stderr or "bytes of pixels" in proc.stderr)


def test_non_image_members_are_never_read_and_sizes_are_capped(tmp_path):
    """A 300 MB notes.txt (zeros, 300 KB compressed) is skipped unread; an oversized image refused."""
    folder = write_class_folders(tmp_path / "dir", {"train": 2})
    archive = tmp_path / "d.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(folder / "train", arcname="train")
        notes = tarfile.TarInfo("train/red/notes.txt")
        notes.size = 300 * 2**20
        tar.addfile(notes, Zeros(notes.size))
    proc = load_limited(archive, memory=GiB)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["splits"] == {"train": 6}

    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(folder / "train", arcname="train")
        big = tarfile.TarInfo("train/red/huge.png")
        big.size = 65 * 2**20
        tar.addfile(big, Zeros(big.size))
    proc = load_limited(archive)
    assert proc.returncode == 1 and "huge.png" in proc.stderr and "limit" in proc.stderr, proc.stderr


def test_many_empty_class_folders_are_found_in_linear_time(tmp_path):
    """20,000 empty folders took 54 s (quadratic search); the answer must not change."""
    archive = tmp_path / "d.tar.gz"
    folder = write_class_folders(tmp_path / "dir", {"train": 2})
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "train", arcname="train")
        for i in range(20_000):
            info = tarfile.TarInfo(f"train/empty{i:05d}")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    proc = load_limited(archive)
    assert proc.returncode == 1 and "class folder 'train/empty00000' is empty" in proc.stderr, proc.stderr


def test_special_files_in_data_folders_are_refused_not_followed(tmp_path):
    """A FIFO hung evaluate; a link to /dev/zero grew to gigabytes; a broken link crashed."""
    for name, make in [
        ("fifo.png", lambda p: os.mkfifo(p)),
        ("zero.png", lambda p: p.symlink_to("/dev/zero")),
        ("broken.png", lambda p: p.symlink_to(tmp_path / "nowhere.png")),
    ]:
        folder = write_class_folders(tmp_path / name, {"train": 2})
        make(folder / "train" / "red" / name)
        proc = load_limited(folder)
        assert proc.returncode == 1 and name in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    # A link to a regular image is an ordinary file and is read.
    folder = write_class_folders(tmp_path / "ok", {"train": 2})
    (folder / "train" / "red" / "link.png").symlink_to(folder / "train" / "red" / "0000.png")
    assert json.loads(load_limited(folder).stdout)["splits"] == {"train": 7}


def test_class_folder_of_unsupported_files_is_an_error_not_a_lost_class(tmp_path):
    folder = write_class_folders(tmp_path / "d", {"train": 2})
    (folder / "train" / "grey").mkdir()
    (folder / "train" / "grey" / "IMG_0001.heic").write_bytes(b"heic")
    with pytest.raises(DataError, match=r"class folder 'train/grey' holds no supported image \(.heic files only"):
        data.load(folder, use_cache=False)


def test_split_params_take_zero_seriously_and_refuse_nonsense():
    """A recorded split_seed of 0 became 1337 (`or`), so later stages validated on training images."""
    from cifar_pack.runtime.records import TrainingRecord

    assert TrainingRecord.from_metadata({"validation_split": 0.2, "split_seed": 0}).split == (0.2, 0)
    assert TrainingRecord.from_metadata(None).split == (0.2, 1337) == TrainingRecord.from_metadata({}).split
    for bad in ({"split_seed": -5}, {"split_seed": "7"}, {"validation_split": 0}, {"validation_split": 1.5}):
        with pytest.raises(DataError, match="recorded"):
            TrainingRecord.from_metadata(bad)


# ---------------------------------------------------------------------------------------------
# Images


def _png_header_only(path: Path, width: int, height: int, bit_depth: int = 16) -> Path:
    """A PNG whose IHDR claims width x height grey pixels; one tiny IDAT (refused before decoding)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def test_pixel_bomb_is_refused_from_its_header_and_the_limit_can_be_raised(tmp_path):
    """13000x13000 16-bit PNG: 20 s and 4.7 GB before; now one line, nothing decoded."""
    bomb = _png_header_only(tmp_path / "bomb.png", 13000, 13000)
    proc = run_limited("predict", bomb, SAMPLE)
    assert_one_line_error(proc, "bomb.png", "169 megapixels", "--max-pixels", code=1)
    assert "DecompressionBombWarning" not in proc.stderr and "cat_1444.jpg" in proc.stdout
    # 100 MP (between Pillow's warning and error thresholds): ours refuses, Pillow's warning is silent.
    mid = _png_header_only(tmp_path / "mid.png", 10000, 10000)
    proc = run_limited("predict", mid)
    assert "100 megapixels" in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    # Raised limit: the header passes, the (truncated) data then fails as an unreadable image.
    proc = run_limited("predict", mid, "--max-pixels", "200000000")
    assert "not a readable image" in proc.stderr and "megapixels" not in proc.stderr, proc.stderr


def test_large_jpeg_is_decoded_in_full_as_every_embedding_language_does(tmp_path):
    """A 32 MP JPEG gets a full decode (no libjpeg reduced-scale draft), so C, Java, Go and Rust,
    which all decode in full, give Python's answer on large photos too."""
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)).resize((8000, 4000))
    big.save(tmp_path / "big.jpg", quality=80)
    proc = run_limited("predict", tmp_path / "big.jpg", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["label"]
    with Image.open(tmp_path / "big.jpg") as img:
        img.load()  # Pillow's plain open + load: the full-size decode
        assert img.size == (8000, 4000)
        full = images.to_model_input(img)
    # Exact: the same decoder (Pillow's libjpeg-turbo) on the same bytes in one process; no engine runs.
    np.testing.assert_array_equal(images.load_image(tmp_path / "big.jpg"), full)


def test_max_pixels_raises_pillows_own_limit_and_refuses_more_than_memory(tmp_path):
    """Pillow refuses images over 179 MP by itself; --max-pixels must be the one limit that counts."""
    (tmp_path / "wide.png").write_bytes(huge_png(14000))  # 196 MP of black: over Pillow's limit
    proc = run_limited("predict", tmp_path / "wide.png", "--max-pixels", "200000000", "--json", memory=2 * GiB)
    assert proc.returncode == 0, proc.stderr
    assert "179" not in proc.stderr and "decompression" not in proc.stderr.lower()
    proc = run_limited("predict", SAMPLE, "--max-pixels", str(10**15))
    assert_one_line_error(proc, "--max-pixels", "more than this machine's", code=2)


def test_fifo_and_device_links_given_to_predict_are_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    proc = run_limited("predict", tmp_path / "fifo.png", tmp_path / "zero.png", SAMPLE, timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("not a regular file") == 2 and "cat_1444.jpg" in proc.stdout


def test_glob_with_link_loops_terminates_and_finds_each_image_once(tmp_path):
    """`predict 'dir/**/*.jpg'` with two ".." links ran for over 30 s."""
    folder = tmp_path / "dir" / "sub"
    folder.mkdir(parents=True)
    for name in ("a.jpg", "sub/b.jpg"):
        Image.fromarray(make_images(1, (200, 30, 30), 0)[0]).save(tmp_path / "dir" / name)
    (folder / "up1").symlink_to("..")
    (folder / "up2").symlink_to("..")
    found = list(inputs.iter_images([str(tmp_path / "dir" / "**" / "*.jpg")]))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["dir/a.jpg", "dir/sub/b.jpg"]
    proc = run_limited("predict", f"{tmp_path}/dir/**/*.jpg", timeout=60)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2, proc.stderr


def test_inputs_that_match_nothing_are_errors_and_the_rest_still_run(tmp_path):
    """`predict a.jpg 'nomatch/*.jpg' emptydir/` exited 0."""
    (tmp_path / "emptydir").mkdir()
    proc = run_limited("predict", SAMPLE, f"{tmp_path}/nomatch/*.jpg", tmp_path / "emptydir", "--json")
    assert proc.returncode == 1, proc.stderr
    results = json.loads(proc.stdout)
    assert [("error" in r) for r in results] == [False, True, True]  # in the order given
    assert "pattern matches no image file" in results[1]["error"] and "holds no image" in results[2]["error"]
    proc = run_limited("predict", f"{tmp_path}/nomatch/*.jpg")
    assert_one_line_error(proc, "pattern matches no image file", code=1)


# ---------------------------------------------------------------------------------------------
# Models and metadata


def _tiny_model(path: Path, metadata: dict[str, str], declared: int = 3, real: int = 3) -> Path:
    """uint8 [N,32,32,3] -> mean colour -> MatMul (3 x real) -> Softmax; declares [N, declared]."""
    weights = np.eye(3, real, dtype=np.float32)
    nodes = [
        helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),  # opset 17: axes attribute
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", 32, 32, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", declared])],
        [onnx.numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    "metadata,sidecar,fragment",
    [
        ({"class_names": "[" * 100_000 + "]" * 100_000}, None, "nested too deeply"),
        ({"class_names": '["r", "g", "b"]', "training": "not json"}, None, "'training' is not a JSON object"),
        ({"class_names": '["r", "g", "b"]', "training": '{"split_seed": -5}'}, None, None),
        ({}, "[1, 2]", "sidecar is not a JSON object"),
        ({"notes": "x" * 2_000_000, "class_names": '["r", "g", "b"]'}, None, "2000000 characters; ignored"),
        ({"class_names": '["a", "b"]'}, None, "lists 2 class names but the model outputs 3"),
    ],
)
def test_broken_metadata_never_crashes_predict_or_info(tmp_path, metadata, sidecar, fragment):
    model = _tiny_model(tmp_path / "m.onnx", metadata)
    if sidecar is not None:
        (tmp_path / "m.onnx.json").write_text(sidecar)
    for args in (["predict", SAMPLE, "--model", model], ["info", model]):
        proc = run_limited(*args)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        if fragment:
            assert fragment in proc.stderr, proc.stderr
    assert len(run_limited("info", model).stdout) < 10_000  # a 2 MB string is not printed whole


def test_recorded_split_seed_that_is_nonsense_is_one_line_for_evaluate(tmp_path):
    model = _tiny_model(
        tmp_path / "m.onnx", {"class_names": '["blue", "green", "red"]', "training": '{"split_seed": -5}'}
    )
    folder = write_class_folders(tmp_path / "d", {"train": 4})
    proc = run_limited("evaluate", "--model", model, "--data", folder, "--split", "val", "--out", tmp_path / "e")
    assert_one_line_error(proc, "split_seed -5", code=1)


def test_graph_wider_than_declared_is_a_model_error(tmp_path):
    model = _tiny_model(tmp_path / "wide.onnx", {"class_names": '["r", "g", "b"]'}, declared=3, real=4)
    proc = run_limited("predict", SAMPLE, "--model", model)
    assert_one_line_error(proc, "wide.onnx", code=1)  # caught by shape inference, else by the run's shape check
    assert ("returned shape" in proc.stderr or "has shape" in proc.stderr) and "\x1b" not in proc.stderr


def test_control_characters_from_metadata_and_file_names_are_escaped(tmp_path):
    """An ESC[2J in a class name or a file name would clear the user's screen."""
    evil = "\x1b[2J\x07"
    names = json.dumps([f"red{evil}", "green", "blue"])
    model = _tiny_model(tmp_path / "m.onnx", {"class_names": names})
    photo = tmp_path / f"x{evil}.png"
    Image.fromarray(make_images(1, (250, 5, 5), 0)[0]).save(photo)
    proc = run_limited("predict", photo, "--model", model, "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout
    assert "red\\x1b[2J\\x07" in proc.stdout and "x\\x1b[2J\\x07.png" in proc.stdout
    as_json = json.loads(run_limited("predict", photo, "--model", model, "--json").stdout)
    assert as_json[0]["label"] == f"red{evil}" and as_json[0]["path"] == str(photo)  # JSON stays exact
    info = run_limited("info", model)
    assert "\x1b" not in info.stdout and "\\u001b" in info.stdout


def test_device_accepts_the_provider_name_its_error_offers():
    proc = run_limited("predict", SAMPLE, "--device", "CPUExecutionProvider")
    assert proc.returncode == 0 and "on cpu" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["predict", SAMPLE, "--top-k", "0"], "--top-k"),
        (["predict", SAMPLE, "--bogus"], "No such option: --bogus"),
        (["train", "--seed", "-1"], "--seed"),
        (["nonsense"], "No such command"),
    ],
)
def test_usage_errors_are_one_line(args, fragment):
    proc = run_limited(*args)
    assert proc.returncode == 2 and proc.stdout == "", proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], proc.stderr


def test_offline_download_keeps_the_real_cause(tmp_path):
    """Offline `--data cifar10` said `failed (Exception)`. A dead proxy makes it hermetic."""
    dead = "http://127.0.0.1:9"
    env = {"HTTPS_PROXY": dead, "https_proxy": dead, "KERAS_HOME": str(tmp_path)}
    proc = run_limited("train", "--data", "cifar10", "--out", tmp_path / "o", memory=8 * GiB, env=env, timeout=120)
    assert_one_line_error(proc, "cifar10: download", "use a local copy", code=1)
    assert "(Exception)" not in proc.stderr and "Error" in proc.stderr.split("failed (", 1)[1]


def test_model_and_sidecar_stay_a_pair_and_killed_writes_leave_no_litter(tmp_path):
    """A kill between .onnx and sidecar paired a model with another export's sidecar; temp files stayed."""
    from cifar_pack.runtime.fileio import sha256_file
    from cifar_pack.runtime.onnx_file import sidecar_path, write_model
    from cifar_pack.runtime.predictor import Predictor

    path = tmp_path / "model.onnx"
    (tmp_path / ".model.k1ll3d.onnx").write_bytes(b"half a model")  # what a killed atomic write leaves
    write_model(path, onnx.load(_tiny_model(tmp_path / "src.onnx", {})), {"class_names": ["r", "g", "b"]})
    assert not (tmp_path / ".model.k1ll3d.onnx").exists()
    assert json.loads(sidecar_path(path).read_text())["model_sha256"] == sha256_file(path)

    # The kill between the two writes: a new model (no labels inside) beside the old sidecar.
    stale = json.loads(sidecar_path(path).read_text())
    onnx.save(onnx.load(_tiny_model(tmp_path / "other.onnx", {}, real=3)), path)
    sidecar_path(path).write_text(json.dumps(stale | {"model_sha256": "0" * 64}))
    assert Predictor(path).class_names == ["0", "1", "2"]  # not the other export's labels


def test_a_full_file_system_is_one_line_and_leaves_nothing_behind(tmp_path):
    """predict --output and export on a full disk printed a 46-line OSError traceback."""
    full = tmp_path / "full"
    full.mkdir()
    # A real full file system: a 64 KB tmpfs (root only; CI runs as root on the polyglot machine).
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (not root?): {mounted.stderr.decode().strip()}")
    try:
        images = tmp_path / "images"
        images.mkdir()
        for i in range(2000):  # ~100 KB of CSV rows: more than the 64 KB there is
            (images / f"{i}.jpg").write_bytes(SAMPLE.read_bytes())
        proc = run_limited("predict", images, "--output", full / "out.csv", timeout=120)
        assert_one_line_error(proc, "out.csv: No space left on device", code=1)
        bundled = ROOT / "cifar_pack" / "pretrained" / "cifar10.onnx"
        proc = run_limited("export", "--model", bundled, "--output", full / "copy.onnx", timeout=120)
        assert_one_line_error(proc, "copy.onnx: No space left on device", code=1)
        assert list(full.iterdir()) == []  # no partial file, no temporary file, no lock
    finally:
        subprocess.run(["umount", str(full)], check=True)
