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

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .config import IMAGE_SIZE
from .errors import InputError

BACKGROUND = (255, 255, 255)
RESAMPLE = Image.Resampling.BILINEAR
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, turning every Pillow failure into one ``InputError``.

    Pillow's decompression-bomb guard stays on: an image over ``Image.MAX_IMAGE_PIXELS`` x 2
    is refused with an error instead of exhausting memory.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so truncated files fail here and not later
            return img.copy() if img.format != "GIF" else img.convert("RGBA")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an image") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: refused, image too large (decompression-bomb limit): {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        if os.path.getsize(path) == 0:
            reason = "empty file"
        raise InputError(f"{path}: not a readable image ({reason})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any Pillow mode to RGB (rules 1 and 2 above)."""
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
        wide = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0
        grey = np.clip(np.rint(wide * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "F":
        grey = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return img.convert("RGB")


def to_model_input(img: Image.Image) -> np.ndarray:
    """Any PIL image -> (32, 32, 3) uint8 RGB array (rules 1-3)."""
    img = to_rgb(img)
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        img = img.resize((IMAGE_SIZE, IMAGE_SIZE), RESAMPLE)
    return np.asarray(img, dtype=np.uint8)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file -> (32, 32, 3) uint8 RGB. Raises ``InputError`` naming the file."""
    return to_model_input(open_image(path))


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


def find_images(inputs: list[str]) -> list[Path]:
    """Expand files, directories (recursive) and glob patterns into a sorted list of paths.

    A plain file is kept whatever its suffix (so a bad file gets its own error later); files
    found inside directories or by globs are kept only when their suffix is an image suffix.
    Names that match nothing are returned as-is so that the caller reports them as missing.
    """
    import glob

    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.exists():
            found.append(path)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            found.extend(m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found
