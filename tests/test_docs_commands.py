"""Every command the README and the quickstart show works as written on a fresh clone.

Cheap commands run for real: the quickstart's Python (a real miss, then the file opened with
xarray) and its ``python -m cloudcache`` commands in a fresh folder, and ``./dev docs`` in a
copy of the repository. The heavy ones (``./dev demo``/``test``, ``pip install``, ``marimo
edit``) are checked to exist: the ``./dev`` verb, the extra, the program and the file.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", "docs/quickstart.md")


def code_blocks(page: str, language: str) -> list[str]:
    """The fenced ``language`` blocks of ``page``, in order."""
    text = (ROOT / page).read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def commands(page: str) -> list[str]:
    """The shell commands of ``page``'s bash blocks, comments removed."""
    found = []
    for block in code_blocks(page, "bash"):
        for line in block.splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                found.append(command)
    return found


def dev_verbs() -> set[str]:
    """The verbs ``./dev`` handles (the labels of its final ``case``)."""
    text = (ROOT / "dev").read_text()
    return set(re.findall(r"^    ([a-z0-9]+)\)$", text, flags=re.MULTILINE))


def test_every_command_of_the_readme_and_the_quickstart_is_known() -> None:
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    verbs = dev_verbs()
    assert {"demo", "test", "docs"} <= verbs
    seen = []
    for page in PAGES:
        for command in commands(page):
            words = shlex.split(command)
            seen.append(words[0])
            if words[0] == "./dev":
                assert words[1] in verbs, command
            elif words[:2] == ["pip", "install"]:
                for spec in words[2:]:
                    extra = re.fullmatch(r"cloudcache(?:\[(\w+)\])?", spec)
                    assert extra, command
                    assert extra.group(1) in extras | {None}, command
            elif words[0] == ".venv/bin/marimo":
                assert words[1] == "edit" and (ROOT / words[2]).is_file(), command
                assert (Path(sys.executable).parent / "marimo").is_file()
            elif words[:3] == ["python", "-m", "cloudcache"]:
                continue  # run for real by test_quickstart_runs_as_written
            else:
                raise AssertionError(f"{page}: no check for the command {command!r}")
    assert "./dev" in seen and "python" in seen


def miss_line(page_text: str) -> str:
    return next(line for line in page_text.splitlines() if line.startswith("cloudcache: miss "))


@pytest.mark.timeout(600)
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    """The first miss, the file opened by xarray and the CLI commands, in a fresh folder.

    Only the key prefix may differ from the page (it holds the libraries' versions).
    """
    page = (ROOT / "docs" / "quickstart.md").read_text()
    first, opened, overwrite = code_blocks("docs/quickstart.md", "python")
    compile(overwrite, "overwrite", "exec")  # samples again: checked to be valid Python only
    script = first + "\nprint('KEY=' + run.last.key)\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CLOUDCACHE_DIR", None)  # cache="disk" means ./.cloudcache, as on the page
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    key = completed.stdout.split("KEY=", 1)[1].strip()
    shown = re.search(r"cloudcache: miss ([0-9a-f]{16}) ", page).group(1)
    printed = miss_line(completed.stderr)
    assert printed.replace(key[:16], shown) == miss_line(page)
    assert "We recommend" not in completed.stderr

    opened = opened.replace(shown, key[:16]).replace(shown[:8], key[:8])
    completed = subprocess.run(
        [sys.executable, "-c", f"{opened}\nprint('OPENED')"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0 and "OPENED" in completed.stdout, completed.stderr[-2000:]

    for command in commands("docs/quickstart.md"):
        words = shlex.split(command.replace(shown[:8], key[:8]))
        if words[:3] != ["python", "-m", "cloudcache"]:
            continue
        result = subprocess.run(
            [sys.executable, *words[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert key[:16] in result.stdout, (command, result.stdout)


def _stamped_venv() -> Path | None:
    """This interpreter's venv, when ``./dev`` has installed the current pyproject.toml into it
    with the ``test`` extra (so ``./dev docs`` needs no pip run)."""
    venv = Path(sys.prefix)
    stamp = (
        subprocess.run(
            ["cksum"], input=(ROOT / "pyproject.toml").read_bytes(), capture_output=True, check=True
        )
        .stdout.split()[0]
        .decode()
    )
    return venv if (venv / f".installed-{stamp}-test").is_file() else None


@pytest.mark.timeout(600)
def test_dev_docs_builds_the_site_in_a_fresh_copy(tmp_path: Path) -> None:
    venv = _stamped_venv()
    if venv is None:
        pytest.skip("this venv was not set up by ./dev for the current pyproject.toml")
    clone = tmp_path / "clone"  # the working tree's files, as a fresh clone has them
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    (clone / ".venv").symlink_to(venv)
    completed = subprocess.run(
        ["./dev", "docs"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "PYTHONPATH": str(clone)},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert (clone / "site" / "index.html").is_file()
    assert "marimo edit notebooks/walkthrough_marimo.py" in completed.stderr
