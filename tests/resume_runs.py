"""One NumPyro sampling call of eight schools in a fresh process, for the resume and extension
tests: the command that runs it, and running it to its JSON answer.

The process prints the draws (``mu``, ``theta``, ``lp`` as nested lists: JSON keeps floats
exactly) and what ``run.last`` says (``resumed``, ``extended``, ``hit``, ``key``,
``location``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

#: The start of every script here: imports, and eight schools as ``m``.
EIGHT_SCHOOLS = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import numpy as np, pymc as pm
    import cloudcache as cc

    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta = pm.Normal("theta", mu, tau, shape=8)
        pm.Normal("y", theta, np.array([15., 10, 16, 11, 9, 11, 10, 18]),
                  observed=np.array([28., 8, -3, 7, -1, 1, 18, 12]))
    """
)

SCRIPT = EIGHT_SCHOOLS + textwrap.dedent(
    """
    with cc.cloud(m, cache=sys.argv[1], storage_options=json.loads(sys.argv[3]) or None,
                  backend="numpyro", quiet=True) as run:
        tree = pm.sample(**json.loads(sys.argv[2]))
    print(json.dumps({
        "mu": tree["posterior"]["mu"].values.tolist(),
        "theta": tree["posterior"]["theta"].values.tolist(),
        "lp": tree["sample_stats"]["lp"].values.tolist(),
        "resumed": run.last.metadata.get("resumed"),
        "extended": run.last.metadata.get("extended"),
        "hit": run.last.hit,
        "key": run.last.key,
        "location": run.last.location,
    }))
    """
)


def sampling_command(
    cache: str, call: dict[str, Any], storage_options: dict[str, Any] | None = None
) -> list[str]:
    """The command of one ``pm.sample(**call)`` with ``cache`` (a folder or a URL)."""
    return [
        sys.executable,
        "-c",
        SCRIPT,
        cache,
        json.dumps(call),
        json.dumps(storage_options or {}),
    ]


def run_sampling(
    cache: str,
    call: dict[str, Any],
    env: dict[str, str],
    storage_options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Run :func:`sampling_command` to the end: its JSON answer and its standard error."""
    done = subprocess.run(
        sampling_command(cache, call, storage_options),
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], seconds: float = 300) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` (polled every 10 ms) and reap it; a process
    that ended first is only reaped (callers check ``returncode``)."""
    try:
        deadline = time.monotonic() + seconds
        while not ready() and process.poll() is None:
            assert time.monotonic() < deadline, "what the kill waits for never came"
            time.sleep(0.01)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
