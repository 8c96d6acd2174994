"""The documentation site builds with ``mkdocs build --strict`` (no broken links or nav entries)."""

from __future__ import annotations

import os
import re
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
    # mkdocs-typer2 runs Typer's own `typer <module> utils docs`: the venv's bin must be on PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "PATH": path, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    for page in ("index.html", "quickstart/index.html", "architecture/index.html"):
        assert (site / page).is_file(), page
    assert "cloud(" in (site / "quickstart" / "index.html").read_text()
    check_api_reference(site)
    shutil.rmtree(site)


def check_api_reference(site: Path) -> None:
    """The API pages hold the docstrings; the site loads nothing from outside (offline)."""
    session = (site / "api" / "session" / "index.html").read_text()
    assert 'id="cloudcache.session.Session"' in session
    assert 'id="cloudcache.calls.records.CallRecord"' in session
    assert "in-process memory" in session  # Session's docstring, rendered
    stores = (site / "api" / "stores" / "index.html").read_text()
    assert 'id="cloudcache.stores.FileStore"' in stores
    cli = (site / "api" / "cli" / "index.html").read_text()
    for command in ("cloudcache ls", "cloudcache verify", "--cache"):
        assert command in cli, command
    assert 'data-md-color-scheme="slate"' in session  # the dark-mode toggle
    check_docstrings_render_cleanly(site)
    for page in site.rglob("*.html"):
        text = page.read_text()
        external = re.findall(r'<(?:link|script)[^>]+(?:href|src)="(https?://[^"]+)"', text)
        assert not external, f"{page} loads {external}"
        assert "fonts.googleapis" not in text, page


def visible_text(page: str) -> str:
    """The text a reader sees: tags removed."""
    return re.sub(r"<[^>]+>", "", page)


def check_docstrings_render_cleanly(site: Path) -> None:
    """Google-style sections as tables, no Sphinx roles, wrapped signatures, cloud() first."""
    for page in sorted((site / "api").rglob("index.html")):
        text = visible_text(page.read_text())
        roles = re.findall(r":(?:class|meth|func|data|attr|mod|exc):", text)
        assert not roles, f"{page} shows Sphinx roles literally"
        assert "Args:" not in text, f"{page}: an Args: section not parsed"
    session = (site / "api" / "session" / "index.html").read_text()
    text = visible_text(session)
    assert text.index("cloud(model=None") < text.index("CallRecord(", text.index("cloud(model"))
    parameters = session[session.index('id="cloudcache.session.Session"') :]
    table = parameters[: parameters.index("</table>")]
    for name in ("model", "cache", "backend", "device", "executor", "explain", "audit"):
        assert f"<code>{name}</code>" in table, name
    assert "Examples:" in text and "print(run)" in text
    signature = re.search(r"Session\(\s*\n\s+model", text)
    assert signature, "Session's signature is not wrapped one parameter per line"
