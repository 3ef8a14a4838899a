"""CPU-bound request work (decoding uploads, parsing JSON tensors) in one bounded pool.

Why bounded: a 111 KB 16-bit PNG of 49 MP decodes into ~250 MB, and a 32 MB JSON body takes 1.5 s
of CPU to parse. Unbounded (a thread per request, or the event loop itself), eight such uploads
took the server past 8 GB and JSON parsing stalled health checks for seconds. Here:

- one pool of ``workers`` threads (default: one per core) does all of it, so at most ``workers``
  decodes are in memory at once, whatever arrives, and the event loop only moves bytes;
- a request's images are probed first (their headers: width x height), and a request whose
  images add up to more than ``max_request_pixels`` is refused whole (413) before any is decoded;
- each image is decoded as its own job: between two, the request's deadline and its client's
  connection are checked, so a request whose client left stops using the CPU at once;
- after a large decode, glibc is asked to return freed memory to the system (``malloc_trim``),
  so a burst does not leave the process holding its peak.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import io
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from ..runtime.images import decode_or_error
from .config import DEFAULT_LIMITS, Limits
from .errors import ClientGone, TooLarge

T = TypeVar("T")
TRIM_ABOVE_PIXELS = 4_000_000  # after decoding an image larger than this, return freed memory to the OS


class DecodePool:
    """The server's pool for CPU-bound request work, with the per-request pixel budget and deadline."""

    def __init__(self, max_pixels: int, limits: Limits = DEFAULT_LIMITS, workers: int | None = None):
        self.max_pixels, self.limits = max_pixels, limits
        self.workers = workers or os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        self._trim = _malloc_trim()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the pool (the event loop stays free)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def decode(
        self, uploads: list[tuple[str, bytes]], disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> list[np.ndarray | str]:
        """Each upload -> a (32, 32, 3) uint8 array or its one-line error, in order.

        Raises:
            TooLarge: when the images' pixels add up to more than the request's budget;
            ClientGone: when the client disconnected (nobody is left to answer).
        """
        sizes = await self.run(lambda: [_pixels(data) for _, data in uploads])
        total, budget = sum(sizes), self.limits.max_request_pixels
        if total > budget:
            raise TooLarge(
                f"the request's images add up to {total / 1e6:,.0f} megapixels; one request may decode "
                f"{budget / 1e6:,.0f} (send fewer or smaller images per request)"
            )
        if total <= TRIM_ABOVE_PIXELS:  # small images: one job, nothing worth interrupting
            return await self.run(lambda: [decode_or_error(d, name, self.max_pixels) for name, d in uploads])
        deadline = time.monotonic() + self.limits.decode_timeout_s
        results: list[np.ndarray | str] = []
        for (name, data), pixels in zip(uploads, sizes):
            if disconnected is not None and await disconnected():
                raise ClientGone("the client disconnected")
            if time.monotonic() > deadline:
                why = f"not decoded: the request's {self.limits.decode_timeout_s:g} s decoding time ran out"
                results.append(f"{name}: {why}")
                continue
            results.append(await self.run(self._decode_one, data, name, pixels))
        return results

    def _decode_one(self, data: bytes, name: str, pixels: int) -> np.ndarray | str:
        try:
            return decode_or_error(data, name, self.max_pixels)
        finally:
            if pixels > TRIM_ABOVE_PIXELS and self._trim is not None:
                self._trim(0)

    def close(self) -> None:
        """Stop: queued jobs are dropped, running ones are not waited for (SIGTERM must not hang)."""
        self.pool.shutdown(wait=False, cancel_futures=True)


def _pixels(data: bytes) -> int:
    """width x height from an image's header (nothing decoded); 0 when it is not an image (its
    decode reports that)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size[0] * img.size[1]
    except Exception:  # noqa: BLE001 - Pillow raises many types for non-images; decoding names the problem
        return 0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None
