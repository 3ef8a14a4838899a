"""Prediction results written as they come: JSON Lines or CSV files, and a JSON array on stdout.

Nothing here holds more than one result: ``cifar-pack predict`` streams ten million results in
the memory of one. A results file is written to a temporary file beside its target and renamed
onto it only when every input has been processed (``fileio.atomic_path``): a killed run leaves
the previous file or none, never a partial file under the name a reader looks for.

    .jsonl   one JSON object a line: path, label, index, probability, top_k (with --top-k > 1),
             or path and error for an input that failed
    .csv     path,label,probability[,label_2,probability_2,...],error: one column pair per
             top-k rank after the first; error empty for images that were classified
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from .errors import UsageError
from .fileio import atomic_path, remove_stale_temps, writer_lock

OUTPUT_SUFFIXES = (".jsonl", ".csv")
Write = Callable[[dict], None]


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output whose format is unknown or that exists (unless ``overwrite``)."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"--output {path}: the format comes from the extension: {' or '.join(OUTPUT_SUFFIXES)}")
    if path.exists() and not overwrite:
        raise UsageError(f"--output {path}: exists; add --overwrite to replace it")
    if path.is_dir():
        raise UsageError(f"--output {path}: is a folder")


@contextlib.contextmanager
def result_file(path: Path, top_k: int = 1) -> Iterator[Write]:
    """Yield a function that writes one result; the file appears at ``path`` only if the block completes.

    One run writes a given file at a time (``writer_lock``): a second is refused before any work,
    and the temporary files it would see are then the leftovers of killed runs, removed here.

    Raises:
        UsageError: another run is writing ``path`` now.
    """
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(writer_lock(path))
        except BlockingIOError:
            raise UsageError(
                f"--output {path}: another cifar-pack run is writing it now; wait for it, or name another file"
            ) from None
        remove_stale_temps(path.parent, [path.name])  # what a killed earlier run left (ours by name)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            yield _csv_writer(fh, top_k) if path.suffix.lower() == ".csv" else _jsonl_writer(fh, top_k)


def _jsonl_writer(fh: TextIO, top_k: int) -> Write:
    def write(result: dict) -> None:
        row = {k: v for k, v in result.items() if k != "top_k" or top_k > 1}
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    return write


def _csv_writer(fh: TextIO, top_k: int) -> Write:
    writer = csv.writer(fh)
    ranks = [column for k in range(2, top_k + 1) for column in (f"label_{k}", f"probability_{k}")]
    writer.writerow(["path", "label", "probability", *ranks, "error"])

    def write(result: dict) -> None:
        if "error" in result:
            writer.writerow([result["path"], "", "", *[""] * len(ranks), result["error"]])
            return
        rest = [value for t in result["top_k"][1:top_k] for value in (t["label"], f"{t['probability']:.6f}")]
        rest += [""] * (len(ranks) - len(rest))  # a model with fewer classes than --top-k
        writer.writerow([result["path"], result["label"], f"{result['probability']:.6f}", *rest, ""])

    return write


class JsonArray:
    """A JSON array on ``out``, one element at a time, byte for byte what ``json.dumps(items, indent=2)`` gives."""

    def __init__(self, out: TextIO):
        self.out, self.count = out, 0

    def write(self, item: dict) -> None:
        text = json.dumps(item, indent=2, default=str).replace("\n", "\n  ")
        self.out.write(("[\n  " if self.count == 0 else ",\n  ") + text)
        self.count += 1

    def close(self) -> None:
        self.out.write("[]\n" if self.count == 0 else "\n]\n")
        self.out.flush()
