"""Running the embedding examples (examples/<lang>/run) and reading their one contract.

Every example prints, per image, ``path TAB label TAB p0 p1 ...`` on stdout (9 significant
digits), and ``path TAB error: why`` on stderr for a file it cannot read, exiting 1 if any failed.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LANGUAGES = ("c", "cpp", "java", "go", "rust")
# What each example's run script needs on PATH; on the polyglot machine every one is present, so a
# missing tool fails the test instead of skipping it.
TOOLCHAINS = {"c": ["gcc"], "cpp": ["gcc", "g++"], "java": ["javac", "java", "mvn"], "go": ["go", "gcc"], "rust": ["cargo", "cc"]}


@dataclass
class Answer:
    rows: dict[str, tuple[str, np.ndarray]]  # path -> (label, probabilities)
    errors: dict[str, str]  # path -> the error line's reason
    returncode: int
    stderr: str


def run_example(lang: str, model: Path, files: list[Path], env: dict | None = None, timeout: float = 1500) -> Answer:
    """Run ``examples/<lang>/run MODEL FILE...`` and parse what it printed."""
    proc = subprocess.run(
        [str(EXAMPLES / lang / "run"), str(model), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else os.environ.copy(),
    )
    rows, errors = {}, {}
    for line in proc.stdout.splitlines():
        path, label, probs = line.split("\t")
        rows[path] = (label, np.array([float(v) for v in probs.split(" ")]))
    for line in proc.stderr.splitlines():
        path, _, why = line.partition("\terror: ")
        if why:
            errors[path] = why
    return Answer(rows, errors, proc.returncode, proc.stderr)
