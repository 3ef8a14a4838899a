"""A corpus of the images people actually have, made from real photos, for the embedding tests.

Every file is written here from real pictures (matplotlib's sample photos and the shared CIFAR-10
JPEGs), so nothing is shipped: every PNG colour type and bit depth (written chunk by chunk, since
Pillow cannot save 16-bit RGB or 2-bit grey), gAMA/iCCP/eXIf chunks, the JPEG variants Pillow
writes (baseline, progressive, 4:4:4/4:2:2/4:2:0, grey, CMYK, EXIF orientations 2-8), sizes from
1x1 to a few megapixels, odd names, and the hostile files a decoder must refuse (truncated,
bad CRC, empty, text, header only, a 26000x26000 PNG far over the pixel cap).

``write_corpus`` returns (good, hostile): Pillow (the Python predictor) accepts every good file and
refuses every hostile one; the embedding examples must do the same.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

SAMPLE_DATA = Path(matplotlib.get_data_path()) / "sample_data"
PHOTO = SAMPLE_DATA / "grace_hopper.jpg"  # 512x600 RGB photo
RGBA_PHOTO = SAMPLE_DATA / "Minduka_Present_Blue_Pack.png"  # RGBA with real transparency
ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-train-jpeg.tar.gz"
HUGE_SIDE = 26000  # 676 MP: far over any pixel cap, ~1 MB on disk


ADAM7 = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
]  # x0, y0, dx, dy


def png_bytes(
    pixels: np.ndarray,
    bit_depth: int,
    colour_type: int,
    chunks: list[tuple[bytes, bytes]] = (),
    interlace: bool = False,
) -> bytes:
    """A PNG from (H, W[, C]) samples already in the file's layout (palette indices for type 3).

    ``chunks`` go between IHDR and IDAT (PLTE, tRNS, gAMA, iCCP, eXIf, ...). Sub-byte depths are
    packed MSB first, 16-bit samples written big-endian, as the PNG specification says; with
    ``interlace`` the rows go in Adam7's seven passes (Pillow writes no interlaced PNG itself).
    """
    h, w = pixels.shape[:2]
    if interlace:
        passes = [pixels[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7]
        filtered = b"".join(_scanlines(p, bit_depth) for p in passes if p.size)
    else:
        filtered = _scanlines(pixels, bit_depth)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, int(interlace))
    body = [(b"IHDR", ihdr), *chunks, (b"IDAT", zlib.compress(filtered, 6)), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(kind, data) for kind, data in body)


def _scanlines(pixels: np.ndarray, bit_depth: int) -> bytes:
    """Rows of (H, W[, C]) samples, each after filter type 0 (none)."""
    h = pixels.shape[0]
    rows = pixels.reshape(h, -1)
    if bit_depth == 16:
        raw = rows.astype(">u2").tobytes()
        stride = rows.shape[1] * 2
    elif bit_depth == 8:
        raw, stride = rows.astype(np.uint8).tobytes(), rows.shape[1]
    else:
        per_byte = 8 // bit_depth
        padded = np.zeros((h, -(-rows.shape[1] // per_byte) * per_byte), np.uint8)
        padded[:, : rows.shape[1]] = rows
        shifts = np.arange(per_byte - 1, -1, -1, dtype=np.uint8) * bit_depth
        packed = (padded.reshape(h, -1, per_byte) << shifts).sum(axis=2).astype(np.uint8)
        raw, stride = packed.tobytes(), packed.shape[1]
    return b"".join(b"\0" + raw[y * stride : (y + 1) * stride] for y in range(h))


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(side: int = HUGE_SIDE) -> bytes:
    """An 8-bit grey PNG of side x side black pixels, compressed row by row (~1 MB for 26000)."""
    compressor, parts, row = zlib.compressobj(9), [], b"\0" * (side + 1)
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def sixteen_bit_png(side: int = 7000) -> bytes:
    """A 49 MP 16-bit greyscale PNG of ~100 KB (stripes compress well): 1.3 GB each to decode before."""
    pixels = np.zeros((side, side), np.uint16)
    pixels[::7] = 40_000
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **options)
    return buf.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()  # b"Exif\0\0" + little-endian ("II") TIFF, as Pillow writes it


def _exif_big_endian(orientation: int) -> bytes:
    """EXIF as many cameras write it: big-endian ("MM") TIFF, one IFD entry, orientation a SHORT."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    return b"Exif\0\0" + b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)


def _photos() -> tuple[Image.Image, Image.Image, list[bytes]]:
    """The photo (cropped off-square so a rotation shows), the RGBA one, and 12 CIFAR JPEGs."""
    photo = Image.open(PHOTO).convert("RGB").crop((40, 20, 440, 320))  # 400x300
    rgba = Image.open(RGBA_PHOTO).convert("RGBA")
    cifar = []
    if ARCHIVE.exists():
        with tarfile.open(ARCHIVE) as tar:
            for i, member in enumerate(tar):
                if member.name.endswith(".jpg") and i % 4001 == 7:
                    cifar.append(tar.extractfile(member).read())
                if len(cifar) == 12:
                    break
    return photo, rgba, cifar


def _png_files(photo: Image.Image, rgba: Image.Image) -> dict[str, bytes]:
    """Every PNG colour type and bit depth Pillow reads, from the photo at 60x45."""
    small = np.asarray(photo.resize((60, 45), Image.Resampling.LANCZOS))  # (45, 60, 3) uint8
    grey = np.asarray(photo.convert("L").resize((60, 45), Image.Resampling.LANCZOS))
    alpha = np.asarray(rgba.resize((60, 45), Image.Resampling.LANCZOS))[:, :, 3]
    grey16 = grey.astype(np.uint16) * 257 + (np.arange(60, dtype=np.uint16) * 3)[None, :]
    rgb16 = small.astype(np.uint16) * 257 + 77
    pal_img = photo.resize((60, 45)).quantize(16)
    index, palette = np.asarray(pal_img), bytes(pal_img.getpalette()[: 16 * 3])
    trns = bytes(int(a) for a in np.linspace(0, 255, 16))
    icc = b"sRGB profile\0\0" + zlib.compress(b"\0" * 200)  # name, compression 0, (fake) profile
    files = {
        "grey 1-bit.png": png_bytes(grey >> 7, 1, 0),
        "grey 2-bit.png": png_bytes(grey >> 6, 2, 0),
        "grey 4-bit.png": png_bytes(grey >> 4, 4, 0),
        "grey 8-bit.png": png_bytes(grey, 8, 0),
        "grey 16-bit.png": png_bytes(grey16, 16, 0),
        "grey tRNS.png": png_bytes(grey, 8, 0, [(b"tRNS", struct.pack(">H", int(grey[0, 0])))]),
        "grey+alpha.png": png_bytes(np.dstack([grey, alpha]), 8, 4),
        "grey+alpha 16-bit.png": png_bytes(np.dstack([grey16, alpha.astype(np.uint16) * 257]), 16, 4),
        "rgb 8-bit.png": png_bytes(small, 8, 2),
        "rgb 16-bit.png": png_bytes(rgb16, 16, 2),
        "rgba 8-bit.png": png_bytes(np.dstack([small, alpha]), 8, 6),
        "rgba 16-bit.png": png_bytes(np.dstack([rgb16, alpha.astype(np.uint16) * 257]), 16, 6),
        "palette.png": png_bytes(index, 8, 3, [(b"PLTE", palette)]),
        "palette 4-bit tRNS.png": png_bytes(index, 4, 3, [(b"PLTE", palette), (b"tRNS", trns)]),
        "gAMA 16-bit grey.png": png_bytes(grey16, 16, 0, [(b"gAMA", struct.pack(">I", 100000))]),
        "gAMA iCCP rgb.png": png_bytes(small, 8, 2, [(b"gAMA", struct.pack(">I", 45455)), (b"iCCP", icc)]),
        "eXIf rotated.png": png_bytes(small, 8, 2, [(b"eXIf", _exif(6).removeprefix(b"Exif\0\0"))]),
        "interlaced rgb.png": png_bytes(small, 8, 2, interlace=True),
        "interlaced grey 2-bit.png": png_bytes(grey >> 6, 2, 0, interlace=True),
        "interlaced rgba 16-bit 7x5.png": png_bytes(
            np.dstack([rgb16, alpha.astype(np.uint16) * 257])[:5, :7], 16, 6, interlace=True
        ),
        "1x1.png": png_bytes(small[:1, :1], 8, 2),
        "2x3 rgba.png": png_bytes(np.dstack([small, alpha])[:3, :2], 8, 6),
        "tall 20x600.png": png_bytes(np.asarray(photo.resize((20, 600))), 8, 2),
    }
    buf = io.BytesIO()
    rgba.save(buf, "PNG")  # Pillow's own RGBA PNG of the real transparent photo
    files["real rgba photo.png"] = buf.getvalue()
    return files


def _jpeg_files(photo: Image.Image, cifar: list[bytes]) -> dict[str, bytes]:
    mid = photo.resize((200, 150), Image.Resampling.LANCZOS)
    files = {
        "baseline 4-2-0.jpg": _jpeg(mid, quality=85, subsampling=2),
        "baseline 4-2-2.jpg": _jpeg(mid, quality=85, subsampling=1),
        "baseline 4-4-4.jpg": _jpeg(mid, quality=95, subsampling=0),
        "progressive.jpg": _jpeg(mid, quality=80, progressive=True),
        "grey.jpg": _jpeg(mid.convert("L"), quality=85),
        "cmyk.jpg": _jpeg(mid.convert("CMYK"), quality=90),
        "ycck.jpg": as_ycck(_jpeg(mid.convert("CMYK"), quality=90)),
        "photo 400x300.jpg": _jpeg(photo, quality=90),
        "odd 33x17.jpg": _jpeg(photo.resize((33, 17)), quality=75),
        "1x1.jpg": _jpeg(photo.resize((1, 1)), quality=90),
        "large 3000x2250.jpg": _jpeg(photo.resize((3000, 2250), Image.Resampling.BICUBIC), quality=80),
    }
    files["exif big-endian orientation 6.jpg"] = _jpeg(photo, quality=85, exif=_exif_big_endian(6))
    for orientation in range(2, 9):
        files[f"exif orientation {orientation}.jpg"] = _jpeg(photo, quality=85, exif=_exif(orientation))
    for i, data in enumerate(cifar):
        files[f"cifar {i:02d}.jpg"] = data
    return files


def as_ycck(cmyk_jpeg: bytes) -> bytes:
    """A YCCK JPEG: a CMYK one whose Adobe marker says its components are YCCK (transform 2).

    Pillow cannot write YCCK; relabelling keeps the stream valid and sends every decoder down its
    YCCK -> CMYK path (the colours change, which does not matter to a comparison)."""
    at = cmyk_jpeg.index(b"\xff\xee\x00\x0eAdobe")
    transform = at + 2 + 2 + 5 + 2 + 2 + 2  # marker, length, "Adobe", version, flags0, flags1
    return cmyk_jpeg[:transform] + b"\x02" + cmyk_jpeg[transform + 1 :]


def _odd_names(files: dict[str, bytes]) -> dict[str, bytes]:
    """The same bytes under names that trip naive code: non-ASCII, a JPEG named .png, no extension."""
    return {
        "café – photo ünïcode.jpg": files["baseline 4-2-0.jpg"],
        "a jpeg named.png": files["progressive.jpg"],
        "a png named.jpg": files["rgba 8-bit.png"],
        "no extension": files["grey 16-bit.png"],
    }


def bad_crc(png: bytes, kind: bytes) -> bytes:
    """``png`` with the CRC of its first ``kind`` chunk flipped (the chunk's data intact)."""
    at = png.index(kind)
    end = at + 4 + struct.unpack(">I", png[at - 4 : at])[0]
    return png[:end] + bytes(b ^ 0xFF for b in png[end : end + 4]) + png[end + 4 :]


def _bad_crcs(good: dict[str, bytes]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(accepted, refused): Pillow checks the CRC of every chunk before the image data and none from
    IDAT on, so a bad IDAT CRC is read as if it were right and a bad IHDR or gAMA CRC is refused."""
    png = good["gAMA iCCP rgb.png"]
    accepted = {"bad IDAT crc.png": bad_crc(png, b"IDAT")}
    refused = {"bad IHDR crc.png": bad_crc(png, b"IHDR"), "bad gAMA crc.png": bad_crc(png, b"gAMA")}
    return accepted, refused


def _hostile_files(good: dict[str, bytes]) -> dict[str, bytes]:
    jpeg, png = good["baseline 4-2-0.jpg"], good["rgb 8-bit.png"]
    idat = png.index(b"IDAT")
    corrupt = bytearray(png)
    corrupt[idat + 8] ^= 0xFF  # a flipped byte of the compressed data: zlib's stream breaks
    return {
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "no EOI.jpg": jpeg[:-2],  # every scan there, the end marker missing: Pillow still says truncated
        "truncated progressive.jpg": good["progressive.jpg"][: len(good["progressive.jpg"]) * 2 // 3],
        "truncated.png": png[: len(png) // 2],
        "corrupt deflate.png": bytes(corrupt),
        "empty.png": b"",
        "text.jpg": b"this is not an image, just some words\n" * 20,
        "header only.jpg": jpeg[:200],
        "header only.png": png[:33],
        "huge 26000x26000.png": huge_png(),
    }


def write_corpus(folder: Path) -> tuple[list[Path], list[Path]]:
    """Write the corpus into ``folder``: (good files, hostile files), sorted by name."""
    photo, rgba, cifar = _photos()
    good = _png_files(photo, rgba) | _jpeg_files(photo, cifar)
    good |= _odd_names(good)
    crc_accepted, crc_refused = _bad_crcs(good)
    good |= crc_accepted
    hostile = _hostile_files(good) | crc_refused
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (good | hostile).items():
        (folder / name).write_bytes(data)
    return sorted(folder / n for n in good), sorted(folder / n for n in hostile)
