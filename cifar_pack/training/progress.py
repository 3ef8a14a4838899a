"""What a person sees while training runs, and how Ctrl-C stops it.

``EpochProgress``: a progress bar per epoch on a terminal (batches, images/s, time left), on
stderr so that ``--json`` output stays clean; without a terminal the per-epoch log line is all.
``GracefulStop``: the first Ctrl-C says at once that training is stopping and ends the epoch
after the current batch (the cut epoch is not recorded, so the run state names only whole
epochs and ``--resume`` continues exactly); a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from .tf_setup import keras

log = logging.getLogger(__name__)


class EpochProgress(keras.callbacks.Callback):
    """A bar for each epoch's batches: ``epoch 3/20 ━━━━━ 120/313 1,234 images/s 0:16 left in this epoch``.

    The time left comes from the epoch's average rate so far, not rich's recent-sample estimate,
    which swung 5:47 -> 7:58 -> 2:56 while tf.data warmed up.
    """

    def __init__(self, epochs: int, steps: int, batch_size: int, console: Console | None = None):
        super().__init__()
        self.epochs, self.steps, self.batch_size = epochs, steps, batch_size
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.bar = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} images/s"),
            TextColumn("{task.fields[left]} left in this epoch"),
            console=self.console,
            transient=True,  # the epoch's log line replaces the bar
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=self.steps, rate="-", left="-")
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.bar is None or self.task is None:
            return
        seconds = time.perf_counter() - self.started
        rate = f"{(batch + 1) * self.batch_size / seconds:,.0f}" if seconds > 0 else "-"
        left = round(seconds / (batch + 1) * (self.steps - batch - 1))
        self.bar.update(self.task, completed=batch + 1, rate=rate, left=f"{left // 60}:{left % 60:02d}")

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.close()  # validation follows the last batch: the bar has said what it can

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class GracefulStop(keras.callbacks.Callback):
    """Ends fit() after the current batch once ``requested`` is set (by ``first_ctrl_c_stops``)."""

    def __init__(self, requested: threading.Event):
        super().__init__()
        self.requested = requested

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.requested.is_set():
            self.model.stop_training = True


@contextlib.contextmanager
def first_ctrl_c_stops() -> Iterator[threading.Event]:
    """While inside: the first SIGINT sets the yielded event and says so; the second raises KeyboardInterrupt.

    Outside the main thread (where Python cannot install signal handlers) it yields an event
    nothing sets, and Ctrl-C keeps Python's default behaviour.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        print("stopping after this batch; the epoch in progress is not kept (Ctrl-C again: at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)
