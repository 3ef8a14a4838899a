"""docs/usage.md states defaults; the command line has them. They must be the same values."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import pytest
import typer

from cifar_pack.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _sections() -> dict[str, str]:
    """docs/usage.md's text under each `## \\`cifar-pack COMMAND\\`` heading (with its ### subsections)."""
    text = (ROOT / "docs" / "usage.md").read_text()
    parts = re.split(r"^## `cifar-pack ([a-z-]+)`\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _documented(section: str) -> dict[str, str]:
    """``{option: default}`` from the section's option tables and its ``[--option VALUE]`` synopsis."""
    found = {}
    tables = re.findall(r"^\| option \| default \|.*\n\|[- |]+\|\n((?:\|.*\n)+)", section, flags=re.M)
    for options, default in re.findall(r"^\| (`--[^|]+) \| ([^|]+) \|", "".join(tables), flags=re.M):
        for option in re.findall(r"`(--[a-z0-9-]+)`", options):
            found[option] = default.strip().strip("`")
    for option, value in re.findall(r"\[(--[a-z0-9-]+) ([^\]|\s]+)\]", section):
        found[option] = value
    return found


def _cli_defaults(name: str) -> dict[str, object]:
    command = typer.main.get_command(app).commands[name]
    defaults = {}
    for param in command.params:
        shown = param.show_default if isinstance(param.show_default, str) else param.default
        for option in param.opts:
            defaults[option] = shown.value if isinstance(shown, Enum) else shown
    return defaults


def _same(documented: str, actual: object) -> bool:
    if isinstance(actual, bool):
        return documented == ("on" if actual else "off")
    try:
        return float(documented.replace(",", "")) == float(str(actual).replace(",", "").strip("()"))
    except ValueError:
        return documented == str(actual)


@pytest.mark.parametrize("command", sorted(_sections()))
def test_every_default_docs_usage_states_is_the_command_lines(command):
    """`--calibrate-method` was documented as minmax while the command used percentile."""
    cli = _cli_defaults(command)
    literal = {o: d for o, d in _documented(_sections()[command]).items() if " " not in d and "'" not in d}
    checked = {o: (d, cli[o]) for o, d in literal.items() if o in cli and cli[o] is not None}
    wrong = {o: pair for o, pair in checked.items() if not _same(*pair)}
    assert not wrong, f"docs/usage.md vs `cifar-pack {command} --help` (documented, actual): {wrong}"
    unknown = sorted(set(literal) - set(cli))
    assert not unknown, f"docs/usage.md documents options `cifar-pack {command}` does not have: {unknown}"


def test_the_docs_state_the_defaults_that_matter():
    """The check above must have something to check: the tables and the synopsis are found."""
    assert _documented(_sections()["export"])["--calibrate-method"]
    assert _documented(_sections()["serve"])["--max-batch-size"] == "64"
    assert _documented(_sections()["train"])["--seed"] == "1337"


def test_every_benchmark_section_names_its_machine():
    """The CPU differs from session to session: one header for all sections was wrong."""
    text = (ROOT / "benchmarks" / "README.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    unnamed = [s.splitlines()[0] for s in sections if not re.search(r"\*\*Machine\*\*: (AMD EPYC|Intel Xeon)", s)]
    assert not unnamed, unnamed
