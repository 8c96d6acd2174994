"""The calls of a test module made again in a fresh Python process against a filled cache.

A test module that defines ``build_model()``, ``calls(model)`` (a dict of results) and
``summary(results)`` (a JSON-able digest of them) uses :func:`calls_in_fresh_process` to prove
that a new process hits the stored files and gets the same numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any


def calls_in_fresh_process(module: str, root: Path) -> dict[str, Any]:
    """Run ``module``'s calls in a new process inside ``cloud(cache=root)``: its records' hits
    and kinds, and the summary of its results."""
    script = textwrap.dedent(
        f"""
        import json, sys, warnings
        warnings.simplefilter("ignore")
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import cloudcache as cc
        from {module} import build_model, calls, summary
        model = build_model()
        with cc.cloud(model, cache={str(root)!r}, quiet=True) as run:
            results = calls(model)
        print(json.dumps({{"hits": [r.hit for r in run.records], "summary": summary(results),
                          "kinds": [r.metadata.get("kind") for r in run.records]}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
