"""Per-model counters since load: Triton's statistics extension (a subset), in its JSON form."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Statistics:
    """Counters of one served model since it was loaded (Triton's statistics extension, a subset)."""

    requests: int = 0
    request_ns: int = 0
    failures: int = 0
    failure_ns: int = 0
    images: int = 0
    batches: int = 0
    batch_ns: int = 0
    last_inference_ms: int = 0

    def succeeded(self, images: int, ns: int) -> None:
        self.requests, self.request_ns, self.images = self.requests + 1, self.request_ns + ns, self.images + images
        self.last_inference_ms = time.time_ns() // 1_000_000

    def failed(self, ns: int) -> None:
        self.failures, self.failure_ns = self.failures + 1, self.failure_ns + ns

    def on_batch(self, size: int, seconds: float) -> None:
        self.batches, self.batch_ns = self.batches + 1, self.batch_ns + round(seconds * 1e9)

    def to_json(self) -> dict:
        return {
            "last_inference": self.last_inference_ms,
            "inference_count": self.images,
            "execution_count": self.batches,
            "inference_stats": {
                "success": {"count": self.requests, "ns": self.request_ns},
                "fail": {"count": self.failures, "ns": self.failure_ns},
                "compute_infer": {"count": self.batches, "ns": self.batch_ns},
            },
        }
