"""The quick-start samples: 20 real CIFAR-10 JPEGs shipped in artifacts/samples/, one place for every test."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "samples"
SAMPLES = sorted(SAMPLE_DIR.glob("*.jpg"))


def write_variants(folder: Path, count: int) -> list[Path]:
    """``count`` JPEGs made from the quick-start samples (each shifted, mirrored and brightened its
    own way, so answers vary), as ``folder/variant_00000.jpg``...: a job of many real-looking files
    without the shared data. Returns the paths in order."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    bases = [np.asarray(Image.open(p).convert("RGB")) for p in SAMPLES]
    paths = []
    for i in range(count):
        image = np.roll(bases[i % len(bases)], (i // len(bases)) % 5 - 2, axis=1)
        if (i // (5 * len(bases))) % 2:
            image = image[:, ::-1]
        image = np.clip(image.astype(np.int16) + (i // (10 * len(bases))) % 21 - 10, 0, 255).astype(np.uint8)
        paths.append(folder / f"variant_{i:05d}.jpg")
        Image.fromarray(image).save(paths[-1], quality=90)
    return paths
