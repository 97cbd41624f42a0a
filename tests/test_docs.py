"""The docs stay honest: every setting documented, the CI runs the README's test line."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from tracker.config import Settings

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text("utf-8")


def test_every_setting_is_in_the_readme() -> None:
    for field in fields(Settings):
        assert f"`TRACKER_{field.name.upper()}`" in README, field.name


def test_quick_start_has_two_commands_and_ci_runs_the_second() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.+?)\n```", section)
    assert len(commands) == 2, commands
    assert "tracker serve" in commands[0]
    assert "pytest" in commands[1]
    ci = (REPO / ".ci" / "run").read_text("utf-8")
    assert commands[1] in ci.splitlines()


def test_decisions_are_numbered() -> None:
    names = sorted(p.name for p in (REPO / "docs" / "decisions").glob("*.md"))
    numbers = [int(name[:4]) for name in names]
    assert numbers == list(range(1, len(names) + 1))
