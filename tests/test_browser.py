"""The marimo walkthrough served by ``marimo run`` and opened in a real Chromium.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``./dev test`` installs it) and Playwright
for Python; no browser is ever downloaded. Skipped, saying why, when either is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "walkthrough_marimo.py"
CHROMIUM = Path(os.environ.get("CLOUDCACHE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Seconds the whole walkthrough may take to run in the app (it samples five tiny runs).
RUN_TIMEOUT = 240
#: Card states in page order: first, rerun, from_disk, overwrite, centred, back_to_noncentred.
EXPECTED_CARDS = ["miss", "hit", "hit", "miss", "miss", "hit"]
#: Table rows: the predictive session (prior, ppc, ppc again), then every call of the walkthrough.
EXPECTED_ROWS = ["miss", "miss", "hit", *EXPECTED_CARDS, "miss", "miss", "hit"]
FINISHED = "Walkthrough complete"

if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's 'chromium' package (./dev test does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def marimo_app(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``marimo run`` of the walkthrough on a loopback port; yields its URL and its log file."""
    pytest.importorskip("marimo")
    port = free_port()
    log = tmp_path / "marimo.log"
    env = {
        **os.environ,
        "CLOUDCACHE_DIR": str(tmp_path / "cache"),
        "CLOUDCACHE_NOTEBOOK_DRAWS": "20",
        "CLOUDCACHE_NOTEBOOK_BACKEND": "pymc",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "marimo", "run", str(NOTEBOOK), "--headless"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-token", "--no-sandbox"]
    with log.open("w") as output:
        server = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its kernel and CLI subprocesses go with it
        )
    try:
        yield f"http://127.0.0.1:{port}/", log
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)


def open_when_up(page: object, url: str, deadline: float) -> None:
    """Load ``url``, retrying while the server starts."""
    while True:
        try:
            page.goto(url, timeout=10_000)  # type: ignore[attr-defined]
            return
        except sync_api.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def states(page: object, selector: str) -> list[str]:
    elements = page.locator(selector)  # type: ignore[attr-defined]
    return [elements.nth(index).get_attribute("data-state") for index in range(elements.count())]


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_walkthrough_app_renders_cards_and_plots_in_chromium(
    marimo_app: tuple[str, Path], tmp_path: Path
) -> None:
    url, log = marimo_app
    started = time.monotonic()
    deadline = started + RUN_TIMEOUT
    profile = tmp_path / "chromium-profile"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 5600},  # the app scrolls inside: fit it all
            timeout=60_000,
        )
        try:
            page = browser.new_page()
            open_when_up(page, url, deadline)
            remaining = max(1.0, deadline - time.monotonic()) * 1000
            try:
                page.get_by_text(FINISHED).wait_for(timeout=remaining)
                page.locator(".cloudcache-row").nth(len(EXPECTED_ROWS) - 1).wait_for(
                    timeout=max(1.0, deadline - time.monotonic()) * 1000
                )
            except sync_api.TimeoutError:
                pytest.fail(f"the app did not finish in {RUN_TIMEOUT} s; log:\n{log.read_text()}")
            print(f"the walkthrough app finished in {time.monotonic() - started:.0f} s")
            plots = page.locator(".marimo-cell img")
            plots.first.wait_for(timeout=30_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.marimo-cell img')]"
                ".every(image => image.complete)",
                timeout=30_000,
            )
            screenshot = tmp_path / "walkthrough.png"
            page.screenshot(path=screenshot, full_page=True)
            print(f"screenshot of the walkthrough app: {screenshot}")

            server_log = log.read_text()
            assert "Traceback" not in server_log, server_log
            assert "[E " not in server_log, server_log  # marimo's cell-error notifications
            assert page.locator(".marimo-output-stale, .marimo-output-loading").count() == 0
            assert states(page, ".cloudcache-card") == EXPECTED_CARDS
            assert states(page, ".cloudcache-row") == EXPECTED_ROWS
            assert plots.count() >= 1, "the forest plot did not render"
            box = plots.first.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100, box
            assert plots.first.evaluate("image => image.naturalWidth > 0"), "the plot is empty"
            shown = page.locator("body").inner_text()
            # the command line section shows the CLI's output in the app, whole
            assert "cloudcache ls --cache" in shown and "cloudcache show" in shown
            assert "draws/tune/chains" in shown and '"kind": "sample"' in shown
            for noise in ("CLOUDCACHE_WALKTHROUGH_SUMMARY", "TqdmWarning", "IProgress"):
                assert noise not in shown, noise
        finally:
            browser.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.timeout(600)
def test_api_reference_reads_cleanly_in_chromium(tmp_path: Path) -> None:
    """The API reference as a reader sees it: cloud() first, tables, no Sphinx roles."""
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
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
    profile = tmp_path / "chromium-profile"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            for name in ("session", "stores", "backends", "errors", "cli"):
                page.goto((site / "api" / name / "index.html").as_uri())
                text = page.locator("article").inner_text()
                for role in (":class:", ":meth:", ":func:", ":data:", ":attr:", ":mod:"):
                    assert role not in text, (name, role)
            page.goto((site / "api" / "session" / "index.html").as_uri())
            headings = page.locator("article h2").all_inner_texts()
            assert headings[0].startswith("cloud(model=None"), headings
            table = page.locator("article table").first
            assert table.is_visible()
            rows = table.locator("tbody tr").all_inner_texts()
            assert [row.split()[0] for row in rows][:3] == ["model", "cache", "overwrite"], rows
            screenshot = tmp_path / "api-session.png"
            page.screenshot(path=screenshot, full_page=True)
            print(f"screenshot of the API reference: {screenshot}")
        finally:
            browser.close()
    shutil.rmtree(site, ignore_errors=True)
