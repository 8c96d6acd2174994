"""Trial counts and figures of the fault-injection tests.

Trial counts are modest by default (CI); ``scripts/reliability_full.py`` raises them through
``CLOUDCACHE_RELIABILITY_SCALE`` and collects the figures every test reports through
:func:`record_trials` into the JSON-lines file named by ``CLOUDCACHE_RELIABILITY_REPORT``.
"""

from __future__ import annotations

import json
import os

SCALE = float(os.environ.get("CLOUDCACHE_RELIABILITY_SCALE", "1"))
REPORT = os.environ.get("CLOUDCACHE_RELIABILITY_REPORT")


def trials(ci_count: int) -> int:
    """``ci_count`` scaled by ``CLOUDCACHE_RELIABILITY_SCALE`` (the full run uses a larger one)."""
    return max(1, round(ci_count * SCALE))


def record_trials(guarantee: str, case: str, count: int, failures: int, **figures: object) -> None:
    """Append one line of figures for docs/reliability.md (only when a report file is set)."""
    if not REPORT:
        return
    line = {"guarantee": guarantee, "case": case, "trials": count, "failures": failures}
    line.update(figures)
    with open(REPORT, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
