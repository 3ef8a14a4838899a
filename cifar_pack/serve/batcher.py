"""Dynamic batching: concurrent requests coalesced into one onnxruntime call, as Triton's batcher does.

Requests put (images, future) on a bounded queue; one task takes up to ``max_batch_size`` images,
waiting at most ``max_queue_delay_ms`` for more after the first (not at all when the batch is
already full), runs the model once in a worker
thread (onnxruntime releases the GIL, so the event loop keeps serving), and splits the result.
A full queue raises ``QueueFull`` at once (the server answers 503 with Retry-After) instead of
letting memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# One request waiting: its images (n, 32, 32, 3) uint8 and the future its probabilities go to.
Item = tuple[np.ndarray, "asyncio.Future[np.ndarray]"]


class QueueFull(Exception):
    """More images are waiting than ``max_queue_images``."""


def _closed(images: np.ndarray) -> np.ndarray:
    raise RuntimeError("this model was unloaded")


class DynamicBatcher:
    """Coalesce ``infer(images)`` calls into batches for ``model`` ((N, 32, 32, 3) uint8 -> (N, C)).

    Args:
        model: the batch function, e.g. ``Predictor.predict_proba``.
        max_batch_size: most images per model call (a larger single request runs alone).
        max_queue_delay_ms: how long the first request of a batch waits for company.
        max_queue_images: most images waiting; beyond it ``infer`` raises ``QueueFull``.
        on_batch: called with (batch size, seconds) after each model call (for metrics).
    """

    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int = 64,
        max_queue_delay_ms: float = 2.0,
        max_queue_images: int = 4096,
        on_batch: Callable[[int, float], None] | None = None,
        instances: int = 1,
    ):
        self.model, self.max_batch_size = model, max_batch_size
        self.delay = max_queue_delay_ms / 1000.0
        self.max_queue_images, self.on_batch = max_queue_images, on_batch
        self.waiting = 0  # images queued and not yet in a model call (the queue-depth gauge)
        self.in_flight = 0  # requests that have not had their answer yet (a replaced model drains them)
        # Since Python 3.10 a Queue binds to the running loop at first use, so it can be made here;
        # the task that drains it is started by the first request, inside the server's loop.
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Up to ``instances`` model calls at once (Triton's instance_group count): with one engine
        # thread each, one batch runs while the next forms (benchmarks/grpc_speed.py).
        self._pool = ThreadPoolExecutor(instances, thread_name_prefix="cifar-pack-infer")
        self._free = asyncio.Semaphore(instances)
        self._calls: set[asyncio.Task[None]] = set()

    async def infer(self, images: np.ndarray) -> np.ndarray:
        """(N, 32, 32, 3) uint8 -> (N, C) float32, batched with whatever else is waiting."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if self.waiting + len(images) > self.max_queue_images:
            raise QueueFull(f"{self.waiting} images are waiting (limit {self.max_queue_images})")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.waiting += len(images)
        self.in_flight += 1
        try:
            await self._queue.put((images, future))
            return await future
        finally:
            self.in_flight -= 1

    async def drain(self, poll_s: float = 0.01) -> None:
        """Wait until every request already handed to this batcher has its answer."""
        while self.in_flight:
            await asyncio.sleep(poll_s)

    async def close(self) -> None:
        """Stop the batching task and the model thread, and let go of the model at once.

        The task and this batcher refer to each other (a cycle only the garbage collector frees,
        which rarely runs when the allocations are onnxruntime's): without dropping the model here,
        60 reloads under traffic kept ~11 MB of sessions each (benchmarks/exposed.py, case I).
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for call in list(self._calls):
            with contextlib.suppress(Exception):
                await call
        self._pool.shutdown(wait=True)
        self.model = _closed

    def _drain(self, batch: list[Item], size: int) -> tuple[int, Item | None]:
        """Add what is already waiting to ``batch`` (no task per item, as asyncio.wait_for would make).

        Returns (images in the batch, an item that did not fit and starts the next batch, or None).
        """
        while size < self.max_batch_size and not self._queue.empty():
            item = self._queue.get_nowait()
            if size + len(item[0]) > self.max_batch_size:
                return size, item
            batch.append(item)
            size += len(item[0])
        return size, None

    async def _run(self) -> None:
        carried = None
        while True:
            first = carried or await self._queue.get()
            carried = None
            batch, size = [first], len(first[0])

            size, carried = self._drain(batch, size)
            if size < self.max_batch_size and carried is None and self.delay > 0:
                await asyncio.sleep(self.delay)  # the most the first request waits for company
                size, carried = self._drain(batch, size)
            await self._free.acquire()  # requests arriving meanwhile join the next batch
            if size < self.max_batch_size and carried is None:
                size, carried = self._drain(batch, size)
            self.waiting -= size
            call = asyncio.get_running_loop().create_task(self._call(batch, size))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _call(self, batch: list[Item], size: int) -> None:
        """One model call for ``batch`` (``size`` images); each request gets its rows or the error."""
        images = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
        started = time.perf_counter()
        try:
            probs = await asyncio.get_running_loop().run_in_executor(self._pool, self.model, images)
        except Exception as exc:  # delivered to each waiting request, never kills the loop
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self._free.release()
        if self.on_batch:
            self.on_batch(size, time.perf_counter() - started)
        offset = 0
        for part, future in batch:
            if not future.done():
                future.set_result(probs[offset : offset + len(part)])
            offset += len(part)
