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
TOOLCHAINS = {
    "c": ["gcc"],
    "cpp": ["gcc", "g++"],
    "java": ["javac", "java", "mvn"],
    "go": ["go", "gcc"],
    "rust": ["cargo", "cc"],
}


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


def python_free_env(shadow: Path) -> dict[str, str]:
    """The environment with a PATH on which no Python can be found, as on an app developer's machine.

    ``shadow`` gets a link to every program on today's PATH (the first of each name) except
    python*, pip* and pyenv's shims; PATH is then that one folder. Nothing else changes.
    """
    shadow.mkdir(parents=True, exist_ok=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or "pyenv" in folder or not Path(folder).is_dir():
            continue
        for program in Path(folder).iterdir():
            hidden = program.name.startswith(("python", "pip", "pydoc", "idle"))
            if hidden or (shadow / program.name).exists() or not os.access(program, os.X_OK):
                continue
            (shadow / program.name).symlink_to(program)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PYENV"))}
    return env | {"PATH": str(shadow)}


def assert_same_answer(label: str, probs: np.ndarray, want: np.ndarray, class_names: list[str], what: str) -> None:
    """An example's answer is Python's: probabilities within the suite's rule and the same top-1.

    Same pixels, same float32 graph: only the engine differs (another onnxruntime version, another
    kernel, another CPU kind), so sums run in another order; FLOAT32_REORDER_ATOL (conftest.py)
    bounds that. For the same reason a top-1 may differ only where Python's two best classes are
    closer than twice that bound (a tie no engine can be held to).
    """
    from ..conftest import FLOAT32_REORDER_ATOL

    np.testing.assert_allclose(probs, want, atol=FLOAT32_REORDER_ATOL, rtol=0, err_msg=what)
    if label != class_names[int(want.argmax())]:
        first, second = np.sort(want)[-2:][::-1]
        assert first - second <= 2 * FLOAT32_REORDER_ATOL, (what, label, class_names[int(want.argmax())])
