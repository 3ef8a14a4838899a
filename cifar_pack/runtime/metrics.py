"""Classification metrics and the confusion-matrix picture. numpy and Pillow only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .fileio import atomic_path


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def summarize(matrix: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/support, class balance and most-confused pairs.

    Precision of a class never predicted is 0.0 (not NaN), so reports stay valid JSON.
    """
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    correct = np.diag(matrix)
    total = int(matrix.sum())
    per_class = {
        name: {
            "precision": float(correct[i] / predicted[i]) if predicted[i] else 0.0,
            "recall": float(correct[i] / support[i]) if support[i] else 0.0,
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    present = support[support > 0]
    off_diagonal = matrix.copy()
    np.fill_diagonal(off_diagonal, 0)
    pairs = sorted(
        (
            (int(off_diagonal[i, j]), class_names[i], class_names[j])
            for i in range(len(class_names))
            for j in range(len(class_names))
            if off_diagonal[i, j]
        ),
        reverse=True,
    )[:5]
    return {
        "samples": total,
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "per_class": per_class,
        "class_balance": {
            "counts": {name: int(support[i]) for i, name in enumerate(class_names)},
            "max_to_min_ratio": float(present.max() / present.min()) if len(present) else None,
            "balanced": bool(len(present) and present.max() <= 1.5 * present.min()),
        },
        "most_confused": [{"true": t, "predicted": p, "count": c} for c, t, p in pairs],
    }


def write_confusion_png(matrix: np.ndarray, class_names: list[str], path: Path, title: str = "") -> Path:
    """A labelled heat map of row-normalised rates with the raw counts written in each cell."""
    n = len(class_names)
    cell, left, top = 56, 110, 60
    img = Image.new("RGB", (left + n * cell + 20, top + n * cell + 110), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for i in range(n):
        for j in range(n):
            shade = int(255 * (1 - rates[i, j]))
            colour = (shade, shade, 255) if i == j else (255, shade, shade)
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=colour, outline=(200, 200, 200))
            text = str(int(matrix[i, j]))
            draw.text(
                (x0 + cell / 2, y0 + cell / 2),
                text,
                fill="black" if rates[i, j] < 0.6 else "white",
                font=font,
                anchor="mm",
            )
        draw.text((left - 6, top + i * cell + cell / 2), class_names[i][:14], fill="black", font=font, anchor="rm")
        label = Image.new("RGB", (100, 14), "white")
        ImageDraw.Draw(label).text((98, 7), class_names[i][:14], fill="black", font=font, anchor="rm")
        img.paste(label.rotate(90, expand=True), (left + i * cell + cell // 2 - 7, top + n * cell + 4))
    draw.text((left, 20), title or "confusion matrix", fill="black", font=font)
    draw.text((8, top - 16), "true \\ predicted", fill="black", font=font)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
