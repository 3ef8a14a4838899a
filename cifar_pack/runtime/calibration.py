"""How far the probabilities are from meaning what they say: the expected calibration error and a
reliability diagram. Numpy and Pillow only.

Calibration is judged on the top-1 probability (the model's confidence): grouped into
``CALIBRATION_BINS`` equal-width bins of (0, 1], a calibrated model is right as often, in each bin,
as its mean confidence there says. ECE = sum over bins of (bin's share of the images) x |bin's
accuracy - bin's mean confidence| (Guo et al., "On Calibration of Modern Neural Networks", 2017).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .fileio import atomic_path

CALIBRATION_BINS = 15  # the usual number (Guo et al.); each bin is 1/15 of confidence wide


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """``{"ece", "bins": [{"lower", "upper", "count", "confidence", "accuracy"}]}`` for ``probs``
    (N, C) float and true ``labels`` (N,) int; a bin covers (lower, upper], the first also 0."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (lower, upper]
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        row: dict = {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count}
        row["confidence"] = float(confidence[members].mean()) if count else None
        row["accuracy"] = float(correct[members].mean()) if count else None
        if count:
            ece += count / len(labels) * abs(row["accuracy"] - row["confidence"])
        table.append(row)
    return {"ece": float(ece), "bins": table}


def write_reliability_png(calib: dict, path: Path, title: str = "") -> Path:
    """Bars of each bin's accuracy against the diagonal a calibrated model would follow; the gap to
    the bin's mean confidence in red, the image count under each bar."""
    bins = calib["bins"]
    size, left, top = 450, 50, 40  # a 30-pixel bar per bin: room for a 4-digit count under each
    bar = size // len(bins)
    img = Image.new("RGB", (left + size + 20, top + size + 60), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    bottom = top + size
    draw.rectangle([left, top, left + size, bottom], outline=(160, 160, 160))
    for i, b in enumerate(bins):
        x0 = left + i * bar
        if b["count"]:
            y_acc, y_conf = bottom - b["accuracy"] * size, bottom - b["confidence"] * size
            draw.rectangle([x0 + 1, y_acc, x0 + bar - 1, bottom], fill=(90, 120, 220))
            draw.rectangle([x0 + 1, min(y_acc, y_conf), x0 + bar - 1, max(y_acc, y_conf)], outline=(220, 40, 40))
        draw.text((x0 + bar / 2, bottom + 12), str(b["count"]), fill="black", font=font, anchor="mm")
    draw.line([left, bottom, left + size, top], fill=(40, 40, 40), width=2)  # perfect calibration, over the bars
    for tick in (0.0, 0.5, 1.0):
        draw.text((left - 6, bottom - tick * size), f"{tick:g}", fill="black", font=font, anchor="rm")
        draw.text((left + tick * size, bottom + 28), f"{tick:g}", fill="black", font=font, anchor="mm")
    draw.text((left, 12), title or "reliability diagram", fill="black", font=font)
    draw.text(
        (left, 24),
        f"ECE {calib['ece']:.2%} ({len(bins)} bins); blue: accuracy, red: gap to confidence",
        fill="black",
        font=font,
    )
    draw.text(
        (left + size / 2, bottom + 44),
        "confidence (top-1 probability); counts under the bars",
        fill="black",
        font=font,
        anchor="mm",
    )
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
