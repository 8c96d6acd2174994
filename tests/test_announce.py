"""Hit/miss announcements: stderr lines, logging, quiet, and badges in real Jupyter and marimo."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import textwrap

import nbformat
import pytest
from cli_entries import sampled_cache
from nbclient import NotebookClient

from cloudcache.ui.announce import (
    announce,
    announce_hit,
    announce_miss,
    format_age,
    format_seconds,
    front_end,
)

HIT_CALL = (
    "announce_hit(prefix='feedfacecafebeef', location='/data/cache/x.nc', "
    "created='2026-01-01T00:00:00+00:00', saved_seconds=12.5, quiet=False)"
)


def test_hit_is_one_stderr_line_and_a_log_record(capsys, caplog):
    created = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    with caplog.at_level(logging.INFO, logger="cloudcache"):
        announce_hit(
            prefix="feedfacecafebeef",
            location="/c/x.nc",
            created=created,
            saved_seconds=75,
            quiet=False,
        )
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("cloudcache: hit feedfacecafebeef from /c/x.nc (5 min 0 s old)")
    assert "saved 1 min 15 s of sampling" in err
    assert [r.getMessage() for r in caplog.records] == [err.strip().removeprefix("cloudcache: ")]


def test_miss_names_backend_and_device(capsys):
    announce_miss(
        prefix="0123456789abcdef",
        model="radon",
        label="draws10_tune10_chains2",
        backend="numpyro",
        device="gpu",
        quiet=False,
    )
    err = capsys.readouterr().err
    assert "miss 0123456789abcdef - sampling radon (draws10_tune10_chains2)" in err
    assert "with numpyro on gpu" in err


def test_quiet_prints_nothing_but_still_logs(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="cloudcache"):
        announce_miss(
            prefix="0" * 16, model="m", label="l", backend="pymc", device="cpu", quiet=True
        )
        announce("plain", quiet=True)
    assert capsys.readouterr().err == ""
    assert len(caplog.records) == 2


def test_terminal_is_the_front_end_outside_notebooks():
    assert front_end() == "terminal"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12 ms"), (5, "5.0 s"), (75, "1 min 15 s"), (7260, "2 h 1 min"), (90000, "1 d 1 h")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_format_age_handles_naive_and_bad_times():
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert format_age("2026-01-01T00:00:00", now=now) == "1 d 0 h"
    assert format_age("yesterday", now=now) == "unknown age"
    assert format_age(None, now=now) == "unknown age"


def test_real_session_announces_the_miss():
    cache = sampled_cache()
    base = cache.stderr["base"]
    assert f"cloudcache: miss {cache.prefixes['base']} - sampling tiny" in base
    assert "with pymc on cpu" in base


def test_jupyter_kernel_gets_an_html_badge_not_a_stderr_line():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from cloudcache.ui.announce import announce_hit, front_end\n"
            f"{HIT_CALL}\nprint(front_end())"
        )
    ]
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    html = [o["data"]["text/html"] for o in outputs if o["output_type"] == "display_data"]
    assert len(html) == 1 and 'class="cloudcache-hit"' in html[0]
    assert "feedfacecafebeef" in html[0] and "saved 12.5 s" in html[0]
    streams = {o["name"]: o["text"] for o in outputs if o["output_type"] == "stream"}
    assert streams == {"stdout": "jupyter\n"}


def test_marimo_notebook_gets_an_html_badge(tmp_path):
    source = textwrap.dedent(
        f"""
        import marimo

        app = marimo.App()


        @app.cell
        def _():
            from cloudcache.ui.announce import announce_hit, front_end

            {HIT_CALL}
            print("FRONT_END=" + front_end())
            return


        if __name__ == "__main__":
            app.run()
        """
    )
    notebook = tmp_path / "badge.py"
    notebook.write_text(source)
    exported = tmp_path / "badge.html"
    command = [sys.executable, "-m", "marimo", "export", "html", str(notebook), "-o", str(exported)]
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    page = exported.read_text()
    assert "cloudcache-hit" in page and "feedfacecafebeef" in page
    assert "FRONT_END=marimo" in page
