"""Every data layout, written by the tests themselves, plus hostile and broken ones."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime import data
from cifar_pack.runtime.config import CIFAR10_CLASSES
from cifar_pack.runtime.errors import DataError
from cifar_pack.runtime.fileio import cache_dir

from .conftest import assert_one_line_error, make_images, run_cli, write_class_folders
from .helpers.releases import release_arrays, write_binary_release, write_python_release


@pytest.mark.parametrize("as_tar", [True, False], ids=["tar.gz", "dir"])
@pytest.mark.parametrize("writer", [write_python_release, write_binary_release], ids=["python", "binary"])
def test_official_releases_round_trip(tmp_path, writer, as_tar):
    parts = release_arrays()
    ds = data.load(writer(tmp_path, parts, as_tar))
    x_train, y_train = ds.split("train")
    x_test, y_test = ds.split("test")
    np.testing.assert_array_equal(x_train, np.concatenate([parts[0][0], parts[1][0]]))
    np.testing.assert_array_equal(y_train, np.concatenate([parts[0][1], parts[1][1]]))
    np.testing.assert_array_equal(x_test, parts[2][0])
    np.testing.assert_array_equal(y_test, parts[2][1])
    assert ds.class_names == list(CIFAR10_CLASSES)
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (32, 32, 3)


def test_extracted_release_found_from_its_parent_folder(tmp_path):
    parts = release_arrays(batches=1)
    write_python_release(tmp_path, parts, as_tar=False)
    assert len(data.load(tmp_path).split("train")[1]) == 20


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="refused global"):
        data.load(folder)
    assert not marker.exists()


def test_class_folders_dir_tar_and_flat_layouts(tmp_path):
    root = write_class_folders(tmp_path / "split", {"train": 4, "test": 2})
    ds = data.load(root)
    assert ds.class_names == ["blue", "green", "red"]
    assert len(ds.split("train")[1]) == 12 and len(ds.split("test")[1]) == 6

    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="mydata")
    from_tar = data.load(archive)
    np.testing.assert_array_equal(from_tar.split("train")[0], ds.split("train")[0])

    flat = write_class_folders(tmp_path / "flat", {"train": 3}) / "train"
    flat_ds = data.load(flat)
    assert flat_ds.class_names == ["blue", "green", "red"] and list(flat_ds.splits) == ["train"]
    np.testing.assert_array_equal(np.bincount(flat_ds.split("train")[1]), [3, 3, 3])


def test_other_sizes_modes_and_formats_become_32x32_rgb(tmp_path):
    for name, (img, fmt) in {
        "a": (Image.new("L", (64, 48), 128), "bmp"),
        "b": (Image.new("RGBA", (32, 32), (255, 0, 0, 255)), "webp"),
    }.items():
        folder = tmp_path / name
        folder.mkdir()
        img.save(folder / f"0.{fmt}")
        img.save(folder / f"1.{fmt}")
    x, y = data.load(tmp_path).split("train")
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.uint8
    assert np.all(x[y == 0] == 128)


def test_stratified_split_is_stratified_and_reproducible():
    y = np.repeat(np.arange(4), [100, 50, 20, 10])
    train_a, val_a = data.stratified_split(y, 0.2, seed=3)
    train_b, val_b = data.stratified_split(y, 0.2, seed=3)
    np.testing.assert_array_equal(val_a, val_b)
    np.testing.assert_array_equal(np.bincount(y[val_a]), [20, 10, 4, 2])
    assert len(set(train_a) & set(val_a)) == 0 and len(train_a) + len(val_a) == len(y)
    assert not np.array_equal(data.stratified_split(y, 0.2, seed=4)[1], val_a)


def test_decoded_arrays_are_cached_by_content(tmp_path):
    root = write_class_folders(tmp_path / "d", {"train": 2})
    first = data.load(root)
    cached = list(Path(cache_dir()).glob(f"{first.sha256}*.npz"))
    assert len(cached) == 1
    again = data.load(root)
    np.testing.assert_array_equal(again.split("train")[0], first.split("train")[0])
    Image.fromarray(make_images(1, (0, 0, 0), 9)[0]).save(root / "train" / "red" / "extra.png")
    assert data.load(root).sha256 != first.sha256


# ---------------------------------------------------------------------------------------------
# Hostile and broken sources


def _tar_with(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("evil", ["../escaped/cat/0.png", "/tmp/abs_escape_cifar_pack/cat/0.png"])
def test_tar_path_traversal_is_refused_and_writes_nothing(tmp_path, evil):
    archive = _tar_with(tmp_path / "evil.tar.gz", {"train/dog/0.png": _png_bytes(), evil: _png_bytes()})
    with pytest.raises(DataError, match="outside the archive"):
        data.load(archive)
    assert not (tmp_path.parent / "escaped").exists()
    assert not Path("/tmp/abs_escape_cifar_pack").exists()


def test_tar_with_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("train/cat/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="is a link"):
        data.load(archive)


def test_truncated_archive_names_the_file(tmp_path):
    good = write_binary_release(tmp_path / "src", release_arrays(), as_tar=True)
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.tar.gz"):
        data.load(truncated)


def test_an_uncompressed_tar_cut_at_a_member_header_is_refused_as_a_cut_tar_gz_is(tmp_path):
    """tarfile reads a .tar that stops at a member's header as a shorter archive: 539 of 900 images
    were evaluated with exit 0. Without its end-of-archive marker the archive is refused."""
    root = write_class_folders(tmp_path / "folders", {"train": 6})
    good = tmp_path / "good.tar"
    with tarfile.open(good, "w") as tar:
        tar.add(root / "train", arcname="train")
    assert data.load(good, use_cache=False).split("train")[0].shape[0] == 18
    with tarfile.open(good) as tar:
        headers = [m.offset for m in tar if m.isfile()]
    for cut in (headers[9], headers[9] + 100):  # at a member header, and inside one
        cut_tar = tmp_path / f"cut at {cut}.tar"
        cut_tar.write_bytes(good.read_bytes()[:cut])
        with pytest.raises(DataError, match=r"cut at .*\.tar: truncated archive"):
            data.load(cut_tar, use_cache=False)
    proc = run_cli("evaluate", "--data", tmp_path / f"cut at {headers[9]}.tar")
    assert_one_line_error(proc, "truncated archive", code=1)


def test_unreadable_images_are_skipped_and_named_and_an_empty_class_folder_is_an_error(tmp_path, caplog):
    root = write_class_folders(tmp_path / "bad", {"train": 2})
    (root / "train" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with caplog.at_level("WARNING", logger="cifar_pack"):
        x, y = data.load(root, use_cache=False).split("train")
    assert len(y) == 6 and np.bincount(y).tolist() == [2, 2, 2]  # the 6 good images, broken.png left out
    assert "skipped 1 unreadable image(s) of 7" in caplog.text and "broken.png" in caplog.text
    (root / "train" / "red" / "broken.png").unlink()
    (root / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        data.load(root)


def test_one_class_and_no_images_are_errors(tmp_path):
    (tmp_path / "only" / "cat").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "only" / "cat" / "0.png")
    with pytest.raises(DataError, match="need at least 2"):
        data.load(tmp_path / "only")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="no images"):
        data.load(tmp_path / "none")


def test_cifar10_download_failure_is_one_line(monkeypatch):
    # Port 9 (discard) on loopback refuses the connection: a real download failure, offline or not.
    from cifar_pack.runtime.data import download

    monkeypatch.setattr(download, "CIFAR10_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(DataError) as info:
        data.load("cifar10")
    message = str(info.value)
    assert "download" in message and "cifar-10-python.tar.gz" in message and "\n" not in message


@pytest.mark.slow
def test_cli_reports_data_errors_without_traceback(tmp_path):
    proc = run_cli("train", "--data", tmp_path / "missing.tar.gz", "--out", tmp_path / "o", "--epochs", "1")
    assert_one_line_error(proc, "--data", "missing.tar.gz", code=2)
    bogus = tmp_path / "notes.zip"
    bogus.write_text("not an archive")
    assert_one_line_error(
        run_cli("train", "--data", bogus, "--out", tmp_path / "o"), "--data", "unknown format", code=2
    )
    good = write_binary_release(tmp_path / "src", release_arrays(), as_tar=True)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_one_line_error(run_cli("train", "--data", cut, "--out", tmp_path / "o"), "cut.tar.gz", code=1)


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train-jpeg.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="the shared CIFAR-10 JPEG archive is not on this machine")
def test_real_shared_archive_loads():
    ds = data.load(REAL)
    x, y = ds.split("train")
    assert x.shape == (50000, 32, 32, 3) and ds.class_names == list(CIFAR10_CLASSES)
    np.testing.assert_array_equal(np.bincount(y), [5000] * 10)


def test_a_flat_folder_of_images_says_class_folders_are_needed(tmp_path):
    """'no images found' for a folder that holds images, just not in class folders."""
    for i in range(3):
        Image.new("RGB", (32, 32), (i * 80, 0, 0)).save(tmp_path / f"{i}.png")
    with pytest.raises(DataError, match="3 images directly in the folder.*folder named after it"):
        data.load(tmp_path, use_cache=False)
