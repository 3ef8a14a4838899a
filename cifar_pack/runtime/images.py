"""Decode any image into the model's input: (32, 32, 3) uint8 RGB. Pillow and numpy only.

The rules, which embedders must copy to get the same answers (docs/embedding.md):

1. EXIF orientation is applied first (``ImageOps.exif_transpose``).
2. Mode conversion to RGB. Alpha (RGBA, LA, PA, P with transparency) is composited over a
   white background, ``BACKGROUND``. 16-bit greyscale (I;16, I) is scaled to 8 bits by its
   full range (value * 255 / 65535); 32-bit float (F) is clipped to 0..255. 1, L, P, CMYK,
   YCbCr use Pillow's own ``convert("RGB")``.
3. Resize to 32x32 with Pillow's ``Image.Resampling.BILINEAR`` (a triangle filter widened by
   the scale factor when shrinking, i.e. antialiased). The whole image is squashed to 32x32:
   the aspect ratio is NOT preserved, nothing is cropped. Images already 32x32 are untouched.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import DEFAULT_MAX_PIXELS, IMAGE_SIZE, MAX_PIXELS_VARIABLE
from .errors import InputError, UsageError

BACKGROUND = (255, 255, 255)
RESAMPLE = Image.Resampling.BILINEAR
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

MAX_FILE_BYTES = 64 * 2**20  # one image file
# Every image is decoded in full, as every embedding example decodes it (docs/embedding.md): a
# reduced JPEG decode (libjpeg's 1/2..1/8 scale) would change the answer for large photos in
# Python only. Decoding needs up to this many bytes a pixel (RGBA, Pillow's widest 8-bit mode):
# a cap above what the machine's memory holds at that rate is refused up front.
DECODE_BYTES_PER_PIXEL = 4
# 16-bit and float greyscale images are scaled to 8 bits in bands of about this many pixels.
GREY_BAND_PIXELS = 1 << 20


def resolve_max_pixels(value: int | None = None) -> int:
    """The pixel cap: ``value`` if given, else ``CIFAR_PACK_MAX_PIXELS`` if set, else 50 MP.

    Read once by whoever decodes many images (``Predictor``, the server), not per image.

    Raises:
        UsageError: a cap below 1, or a ``CIFAR_PACK_MAX_PIXELS`` that is not an integer.
    """
    if value is None:
        text = os.environ.get(MAX_PIXELS_VARIABLE)
        try:
            value = int(text) if text else DEFAULT_MAX_PIXELS
        except ValueError:
            raise UsageError(f"{MAX_PIXELS_VARIABLE}={text!r}: not an integer") from None
    if value < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {value}")
    memory = _physical_memory()
    if value * DECODE_BYTES_PER_PIXEL > memory:
        raise UsageError(
            f"--max-pixels {value:,}: an image that large needs {value * DECODE_BYTES_PER_PIXEL / 1e9:,.0f} GB to "
            f"decode, more than this machine's {memory / 1e9:.0f} GB of memory"
        )
    return value


@functools.cache
def _physical_memory() -> int:
    """Bytes of RAM, read once: ``decode`` checks its cap once per image. Unknown (no ``sysconf``,
    as on Windows): no bound from it."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 2**63


def open_image(path: str | os.PathLike, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file, turning every failure into one ``InputError``.

    Only regular files (or links to one) up to 64 MB are read: a FIFO would block, a link to
    /dev/zero never ends. Images over ``max_pixels`` (``resolve_max_pixels``) are refused from
    their header.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file{' (a broken link)' if path.is_symlink() else ''}") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a directory, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (a FIFO, device or socket); refusing to read it")
    if st.st_size == 0:
        raise InputError(f"{path}: not a readable image (empty file)")
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {st.st_size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for one image")
    with open(path, "rb") as fh:
        return decode(fh, str(path), max_pixels)


def decode(fp: BinaryIO, name: str, max_pixels: int | None = None) -> Image.Image:
    """Decode an open binary file (or BytesIO) named ``name``; ``InputError`` on any failure."""
    limit = resolve_max_pixels(max_pixels)
    # Pillow's own bomb check (an error above 2 x Image.MAX_IMAGE_PIXELS, 179 MP by default) is the
    # same header check as the cap below, with a message that names Pillow's number and an upper
    # bound --max-pixels could not raise: the cap here replaces it, process-wide.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(fp) as img:
            width, height = img.size
            if width * height > limit:
                raise InputError(
                    f"{name}: refused, {width}x{height} is {_megapixels(width * height)} megapixels, over the "
                    f"{_megapixels(limit)} MP limit (raise it with --max-pixels or CIFAR_PACK_MAX_PIXELS)"
                )
            img.load()  # decode now, so truncated files fail here and not later
            if img.format == "GIF":
                return img.convert("RGBA")
            out = img.copy()
            out.format = img.format  # copy() drops it; to_rgb reads it (a JPEG's EXIF is in info)
            return out
    except UnidentifiedImageError:
        kinds = ", ".join(s.lstrip(".").upper() for s in IMAGE_SUFFIXES)
        raise InputError(f"{name}: not a readable image (not an image format Pillow knows: {kinds}, ...)") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        # Pillow's messages may hold the file object's repr ("<_io.BytesIO object at 0x...>"): name the file.
        why = str(exc).replace(repr(fp), repr(name))[:200] or type(exc).__name__
        raise InputError(f"{name}: not a readable image ({why})") from None


def _megapixels(pixels: int) -> str:
    """Whole megapixels from 10 up, one decimal below: a 100,000-pixel cap reads "0.1", not "0"."""
    mp = pixels / 1e6
    return f"{mp:.1f}" if mp < 10 else f"{mp:.0f}"


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any Pillow mode to RGB (rules 1 and 2 above), or to "L"
    for greyscale sources, which ``to_model_input`` triples after the resize."""
    if img.format != "JPEG" or "exif" in img.info:
        # A JPEG's EXIF (APP1) is read at open into info["exif"]: without it there is no
        # orientation, and skipping the parse makes 32x32 JPEGs decode ~10 % faster (benchmarks/two_cores.py).
        img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        return _grey8(img, _scale_16_bit)
    if mode == "F":
        return _grey8(img, lambda rows: np.clip(np.rint(rows), 0, 255).astype(np.uint8))
    if mode == "L":
        return img  # tripled to RGB after the resize (to_model_input): the same pixels, a third of the memory
    return img.convert("RGB")


def _scale_16_bit(rows: np.ndarray) -> np.ndarray:
    """16-bit values -> 8 bits by the full range: rint(v * 255 / 65535) = (v + 128) // 257 exactly
    for integers (65535 = 255 * 257, and v / 257 is never halfway), in int32, not float64."""
    return ((np.clip(rows, 0, 65535).astype(np.int32) + 128) // 257).astype(np.uint8)


def _grey8(img: Image.Image, convert: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    """A 16-bit or float greyscale image -> "L", converted a band of rows at a time.

    A 49 MP 16-bit PNG converted whole in float64 took 1.3 GB; in bands of ~1 MP the
    temporaries stay ~10 MB and the result is the 49 MB "L" image.
    """
    width, height = img.size
    out = np.empty((height, width), np.uint8)
    step = max(1, GREY_BAND_PIXELS // max(width, 1))
    for top in range(0, height, step):
        out[top : top + step] = convert(np.asarray(img.crop((0, top, width, min(top + step, height)))))
    return Image.fromarray(out, mode="L")


def to_model_input(img: Image.Image) -> np.ndarray:
    """Any PIL image -> (32, 32, 3) uint8 RGB array (rules 1-3)."""
    img = to_rgb(img)
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), RESAMPLE)
    return np.asarray(img.convert("RGB") if img.mode == "L" else img, dtype=np.uint8)


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file -> (32, 32, 3) uint8 RGB. Raises ``InputError`` naming the file."""
    return to_model_input(open_image(path, max_pixels))


def decode_bytes(data: bytes, name: str, max_pixels: int | None = None) -> np.ndarray:
    """Encoded image bytes (an upload, an archive member) -> (32, 32, 3) uint8 RGB; ``InputError``."""
    return to_model_input(decode(io.BytesIO(data), name, max_pixels))


def decode_or_error(data: bytes, name: str, max_pixels: int | None = None) -> np.ndarray | str:
    """``decode_bytes``, or its one-line error message: for batches where a bad image must not stop the rest."""
    try:
        return decode_bytes(data, name, max_pixels)
    except InputError as exc:
        return str(exc)


def array_to_model_input(array: np.ndarray, name: str = "array") -> np.ndarray:
    """An HWC image array of any size (uint8, or float in 0..255) -> (32, 32, 3) uint8 RGB."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InputError(f"{name}: expected an HxWxC image with C in (1, 3, 4), got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise InputError(f"{name}: expected numeric pixels, got dtype {array.dtype}")
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE) and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    mode = "RGBA" if array.shape[2] == 4 else "RGB"
    return to_model_input(Image.fromarray(np.ascontiguousarray(array), mode=mode))
