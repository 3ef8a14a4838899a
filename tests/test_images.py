"""Image decoding for inference: every mode and format, EXIF, resizing, broken files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cifar_pack.runtime import images, inputs
from cifar_pack.runtime.errors import InputError


@pytest.mark.parametrize("fmt", ["png", "jpeg", "bmp", "gif", "webp", "tiff"])
def test_formats_decode_to_32x32_rgb(tmp_path, fmt):
    img = Image.new("RGB", (40, 30), (200, 100, 50))
    path = tmp_path / f"x.{fmt}"
    img.save(path)
    arr = images.load_image(path)
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - [200, 100, 50]).max() <= 8  # lossy formats and GIF palettes


@pytest.mark.parametrize(
    "mode,value,expected",
    [
        ("1", 1, (255, 255, 255)),
        ("L", 77, (77, 77, 77)),
        ("LA", (77, 0), (255, 255, 255)),  # fully transparent -> the white background
        ("LA", (77, 255), (77, 77, 77)),
        ("RGBA", (10, 20, 30, 0), (255, 255, 255)),
        ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
        ("I;16", 65535, (255, 255, 255)),
        ("I;16", 257 * 100, (100, 100, 100)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("F", 300.0, (255, 255, 255)),
    ],
)
def test_modes_become_rgb(mode, value, expected):
    arr = images.to_model_input(Image.new(mode, (32, 32), value))
    assert arr.shape == (32, 32, 3)
    np.testing.assert_array_equal(arr[0, 0], expected)


def test_half_transparent_alpha_is_composited_on_white():
    arr = images.to_model_input(Image.new("RGBA", (32, 32), (0, 0, 0, 128)))
    assert 125 <= arr[0, 0, 0] <= 128  # halfway between black and the white background


def test_palette_with_transparency():
    img = Image.new("P", (32, 32), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    np.testing.assert_array_equal(images.to_model_input(img)[0, 0], (255, 255, 255))


def test_exif_orientation_is_applied(tmp_path):
    # A 64x32 image, left half red, right half blue, stored with orientation 6 (rotate 90 cw to view).
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)
    arr[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    out = images.load_image(path)
    # Viewed upright the image is 32 wide x 64 tall: red on top, blue at the bottom.
    assert out[2, 16, 0] > 200 and out[2, 16, 2] < 60
    assert out[29, 16, 2] > 200 and out[29, 16, 0] < 60


def test_resize_squashes_the_whole_image():
    arr = np.zeros((32, 128, 3), np.uint8)
    arr[:, 64:] = 255  # right half white
    out = images.array_to_model_input(arr)
    assert out.shape == (32, 32, 3)
    assert out[:, :15].max() == 0 and out[:, 17:].min() == 255  # both halves kept: nothing cropped


def test_resize_matches_pillow_bilinear():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(arr).resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(images.array_to_model_input(arr), expected)


def test_arrays_of_other_dtypes_and_channels():
    assert images.array_to_model_input(np.full((32, 32), 7.4)).tolist()[0][0] == [7, 7, 7]
    assert images.array_to_model_input(np.zeros((10, 10, 4), np.uint8)).shape == (32, 32, 3)
    with pytest.raises(InputError, match="shape"):
        images.array_to_model_input(np.zeros((4, 4, 5), np.uint8))


def test_broken_files_raise_input_error_naming_them(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    for path, reason in (
        (empty, "empty file"),
        (text, "not a readable image"),
        (truncated, "truncated.png"),
        (tmp_path / "missing.png", "no such file"),
        (tmp_path, "directory"),
    ):
        with pytest.raises(InputError, match=reason) as info:
            images.load_image(path)
        assert str(path) in str(info.value)
        assert "<_io." not in str(info.value)  # the file's name, never Python's repr of it
    for data in (b"hello", good.read_bytes()[:60]):  # an upload: bytes in memory, named by the client
        with pytest.raises(InputError, match="upload.png: not a readable image") as info:
            images.decode_bytes(data, "upload.png")
        assert "<_io." not in str(info.value) and "0x" not in str(info.value)


def test_the_pixel_cap_is_the_one_limit_not_pillows_bomb_check(tmp_path, monkeypatch):
    """Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS with its own message and number; the
    cap (max_pixels) replaces that check, so raising the cap raises the one limit there is."""
    path = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)  # 300x300 > 2x Pillow's limit
    assert images.load_image(path, max_pixels=300 * 300).shape == (32, 32, 3)
    with pytest.raises(InputError, match=r"300x300 is 0.1 megapixels, over the 0.1 MP limit") as info:
        images.load_image(path, max_pixels=300 * 300 - 1)
    assert "decompression" not in str(info.value)


def test_iter_images_expands_dirs_and_globs(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.png", "a/b/2.jpg", "a/notes.txt", "3.png"):
        (tmp_path / name).write_bytes(b"x")
    found = list(inputs.iter_images([str(tmp_path / "a"), str(tmp_path / "*.png"), str(tmp_path / "nope.png")]))
    assert [p.name for p in found[:3]] == ["1.png", "2.jpg", "3.png"]
    assert found[3] == {"path": str(tmp_path / "nope.png"), "error": f"{tmp_path / 'nope.png'}: no such file"}


def test_folders_are_walked_lazily_in_sorted_order(tmp_path):
    """The same order as sorting every path (files and folders interleaved by name), one item at a time."""
    names = ["b.png", "a/z.jpg", "a/c/d.jpg", "a/c.png", "a.png", "a/b/e.png", "m/n/o/p.png", "z.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)  # a link to a folder: never followed
    walk = inputs.iter_images([str(tmp_path)])
    first = next(walk)  # lazily: the first file comes before the rest of the tree is read
    found = [first, *walk]
    expected = sorted(tmp_path / n for n in names if not n.endswith(".txt"))
    assert found == expected
