"""``python -m cloudcache.demo`` as a new user runs it: plain messages, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_names_the_device_adds_no_noise_and_cleans_up(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "cloudcache.demo", "--draws", "200"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    output = completed.stdout + completed.stderr
    assert "with numpyro on cpu" in completed.stderr  # the device used, not "on auto"
    assert " on auto" not in output
    assert "We recommend running at least 4 chains" not in output
    assert "removed at the end" in completed.stdout
    assert "3. after restart: hit=True" in completed.stdout
    assert list(temporary.iterdir()) == []
