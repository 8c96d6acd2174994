"""Real cache entries for the CLI/explain/announce tests, sampled once per test process.

Five entries made through ``cloudcache.cloud(..., backend="pymc")``: a base call, then calls
that change one thing each (pm.Data values, draws, a prior, the model), sampled with
``explain=True`` so the explanations printed on each miss are kept too.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymc as pm

import cloudcache as cc
from cloudcache.stores.usage import USAGE_DIRECTORY

DRAWS = {"tune": 30, "chains": 1, "random_seed": 1, "progressbar": False}


def small_model(name: str = "tiny", x_scale: float = 1.0, prior_sd: float = 2.0) -> pm.Model:
    """A regression with one ``pm.Data`` input; each argument changes exactly one component."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = 0.3 + 1.2 * x + rng.normal(size=12)
    with pm.Model(name=name) as model:
        xd = pm.Data("x", x * x_scale)
        a = pm.Normal("a", 0.0, prior_sd)
        b = pm.Normal("b", 0.0, 2.0)
        pm.Normal("y", a + b * xd, 1.0, observed=y)
    return model


@dataclass
class SampledCache:
    """A directory of real entries, their key prefixes by role and the stderr of each call."""

    root: Path
    prefixes: dict[str, str]
    stderr: dict[str, str]

    def copy(self, destination: Path) -> Path:
        """A private copy for tests that change or remove files.

        The copy has no record of use (no last-used markers: a hit in an earlier test, such as
        test_explain's, touched one), so its entries were last used when their files say.
        """
        shutil.copytree(self.root, destination)
        shutil.rmtree(destination / USAGE_DIRECTORY, ignore_errors=True)
        return destination


CALLS = {
    "base": (small_model(), 30),
    "data": (small_model(x_scale=2.0), 30),
    "draws": (small_model(), 40),
    "prior": (small_model(prior_sd=3.0), 30),
    "other": (small_model(name="other"), 30),
}


@functools.cache
def sampled_cache() -> SampledCache:
    """Sample the five calls once into a fresh directory (kept for the whole process)."""
    root = Path(tempfile.mkdtemp(prefix="cloudcache-cli-tests-")) / "cache"
    atexit.register(shutil.rmtree, root.parent, True)  # nothing left in /tmp
    prefixes, stderr = {}, {}
    for role, (model, draws) in CALLS.items():
        captured = io.StringIO()
        with (
            contextlib.redirect_stderr(captured),
            cc.cloud(model, cache=str(root), backend="pymc", explain=True) as run,
        ):
            pm.sample(draws, **DRAWS)
        assert run.last is not None and not run.last.hit
        prefixes[role] = run.last.key[:16]
        stderr[role] = captured.getvalue()
    return SampledCache(root, prefixes, stderr)


@functools.cache
def predictive_cache() -> Path:
    """A directory with an entry of four call kinds: pm.sample, prior and posterior
    predictive, and find_MAP (which has no draws, tune or chains)."""
    root = Path(tempfile.mkdtemp(prefix="cloudcache-cli-kinds-")) / "cache"
    atexit.register(shutil.rmtree, root.parent, True)
    with cc.cloud(small_model(name="kinds"), cache=str(root), backend="pymc", quiet=True):
        trace = pm.sample(30, **DRAWS)
        # find_MAP before the predictive calls: on PyMC 5.x, after sample_posterior_predictive
        # its start-value check fails with AttributeError (PyMC's, with or without the cache).
        with warnings.catch_warnings():  # PyMC 6's notes on find_MAP's future defaults
            warnings.simplefilter("ignore", FutureWarning)
            pm.find_MAP(progressbar=False)
        pm.sample_prior_predictive(25, random_seed=2)
        pm.sample_posterior_predictive(trace, random_seed=3, progressbar=False)
    return root
