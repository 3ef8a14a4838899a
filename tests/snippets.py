"""What a docs snippet says it prints, and a check that a run printed it."""

from __future__ import annotations

import re
from pathlib import Path

# A Triton classification entry: "probability:index:label", the probability with 6 decimals.
_ENTRY = re.compile(r"b'([0-9.]+):(\d+):(\w+)'")


def assert_prints_its_comment(snippet: str, stdout: str) -> None:
    """The classes the snippet's `print(...)  # [[b'p:i:label' ...]]` comment shows, in order, with
    their probabilities within 1e-4: onnxruntime's kernels differ by CPU kind in the last float
    bits, and the comment shows six decimals."""
    comment = next(line.split("#", 1)[1] for line in snippet.splitlines() if line.startswith("print(") and "#" in line)
    shown, printed = _ENTRY.findall(comment), _ENTRY.findall(stdout)
    assert shown and [e[1:] for e in printed] == [e[1:] for e in shown], (stdout, comment)
    for (p_printed, *_), (p_shown, *_) in zip(printed, shown):
        assert abs(float(p_printed) - float(p_shown)) <= 1e-4, (stdout, comment)


def doc_commands(path: Path, prefix: str) -> list[str]:
    """Lines starting with ``prefix`` inside the shell code fences (``` or ```bash) of a Markdown file."""
    found, fence = [], None
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence in ("", "bash") and line.strip().startswith(prefix):
            found.append(line.strip())
    return found


def doc_block(path: Path, marker: str) -> str:
    """The first ```python block of the Markdown file at ``path`` that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    return next(b for b in blocks if marker in b)
