"""The documentation site builds with ``mkdocs build --strict`` (no broken links or nav entries)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def nav_files(nav: list) -> list[str]:
    """Every page path named in an mkdocs ``nav`` (nested sections flattened)."""
    found: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        found.extend(nav_files(value) if isinstance(value, list) else [value])
    return found


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = set(nav_files(config["nav"]))
    on_disk = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert on_disk - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - on_disk == set(), "nav entries without a page"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    for page in ("index.html", "quickstart/index.html", "architecture/index.html"):
        assert (site / page).is_file(), page
    assert "cloud(" in (site / "quickstart" / "index.html").read_text()
    shutil.rmtree(site)
