"""The quick-start samples: 20 real CIFAR-10 JPEGs shipped in artifacts/samples/, one place for every test."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "samples"
SAMPLES = sorted(SAMPLE_DIR.glob("*.jpg"))
