"""The README's commands use flags their commands have: every `python train.py ...` / `python -m
<module> ...` line (continuations joined, inline ones too) is checked against that command's parser."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.test_help import parser_of

ROOT = Path(__file__).resolve().parents[1]
MODULES = {"train.py": "train", "eval.evaluate": "eval.evaluate", "eval.score": "eval.score",
           "eval.bench_generate": "eval.bench_generate", "engine.tools.predict": "engine.tools.predict",
           "engine.tools.sweep": "engine.tools.sweep", "engine.tools.bench": "engine.tools.bench",
           "engine.tools.plots": "engine.tools.plots"}
COMMAND = re.compile(r"python (?:-m )?(train\.py|eval\.\w+|engine\.tools\.\w+)\b([^`|\n]*)")


def readme_commands() -> list[tuple[str, str]]:
    """(command, its arguments) for every command the README writes, code blocks and inline code alike."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")  # shell continuations
    text = re.sub(r"\s#[^\n`]*", "", text)  # comments after a command, and headings
    return [(match.group(1), match.group(2)) for match in COMMAND.finditer(text)]


def test_the_readme_names_each_command_many_times():
    counts = {}
    for command, _ in readme_commands():
        counts[command] = counts.get(command, 0) + 1
    assert counts["train.py"] >= 15 and counts["eval.evaluate"] >= 6 and counts["engine.tools.bench"] >= 4


@pytest.mark.parametrize("command", sorted(MODULES))
def test_every_flag_the_readme_gives_a_command_is_one_of_its_options(command):
    options = {o for action in parser_of(MODULES[command])._actions for o in action.option_strings}
    unknown = set()
    for name, arguments in readme_commands():
        if name != command:
            continue
        try:
            tokens = shlex.split(arguments.replace("...", " "))
        except ValueError:  # an unclosed quote in prose: the plain words
            tokens = arguments.split()
        unknown |= {t.split("=")[0].rstrip(".,;:)") for t in tokens if t.startswith("--")} - options
    assert unknown == set()
