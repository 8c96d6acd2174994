"""Run the fault-injection tests with the full trial counts and print their figures as JSON.

CI runs ``tests/reliability`` with modest counts (about 3 minutes). This script runs the same
tests with every count multiplied by ``--scale`` (default 5: 60 SIGKILLed FileStore writers,
15 SIGKILLed sampling sessions, 200 random bit flips, 5 rounds of 16 concurrent processes, ...)
and prints one JSON record per case plus totals; the figures go into docs/reliability.md.

    python scripts/reliability_full.py [--scale 5] [--out figures.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def run(scale: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "figures.jsonl"
        environment = {
            **os.environ,
            "CLOUDCACHE_RELIABILITY_SCALE": str(scale),
            "CLOUDCACHE_RELIABILITY_REPORT": str(report),
        }
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider"],
            cwd=REPOSITORY,
            env=environment,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        cases = (
            [json.loads(line) for line in report.read_text().splitlines()]
            if report.exists()
            else []
        )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return {
        "scale": scale,
        "pytest_exit_code": done.returncode,
        "pytest_summary": summary,
        "wall_seconds": round(seconds, 1),
        "total_trials": sum(int(case["trials"]) for case in cases),
        "total_failures": sum(int(case["failures"]) for case in cases) + (done.returncode != 0),
        "cases": cases,
        **({"pytest_output_tail": done.stdout[-4000:]} if done.returncode else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=5.0, help="multiplier of the CI counts")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    arguments = parser.parse_args()
    figures = run(arguments.scale)
    text = json.dumps(figures, indent=2)
    print(text)
    if arguments.out:
        arguments.out.write_text(text + "\n")
    sys.exit(0 if figures["pytest_exit_code"] == 0 else 1)


if __name__ == "__main__":
    main()
