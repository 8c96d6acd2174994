"""The code base stays ruff-clean (lint and format), as CI checks it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_merge_conflict_markers() -> None:
    """No tracked text file (code, docs, notebooks, config) holds a merge's conflict markers."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = []
    for name in tracked:
        path = REPO / name
        if path.suffix not in {".py", ".md", ".toml", ".yml", ".yaml", ".ipynb", ".txt", ""}:
            continue
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(markers) or line == "=======":
                found.append(f"{name}:{number}")
    assert not found, found
