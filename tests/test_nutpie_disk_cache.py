"""nutpie's C callbacks come from numba's disk cache in a new process, with nutpie's draws.

The cross-process test runs two fresh processes over one empty PyTensor compile directory
(``PYTENSOR_FLAGS=base_compiledir=...``): the first compiles and stores the callbacks, the
second must load both and sample exactly what nutpie's own compilation samples. A nutpie miss
in a fresh process also leaves ArviZ unimported (nutpie is imported against a stand-in).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

pytest.importorskip("nutpie")

from cloudcache.backends.choose import nutpie_persists

pytestmark = pytest.mark.skipif(
    not nutpie_persists(), reason="nutpie < 0.16.11 or PyTensor's numba cache off"
)

ROOT = Path(__file__).resolve().parents[1]


def small_model() -> pm.Model:
    rng = np.random.default_rng(5)
    x = rng.normal(size=70)
    with pm.Model() as model:
        xd = pm.Data("x", x)
        a = pm.Normal("a", 0.0, 5.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", a + xd, sigma, observed=x + 0.3 + rng.normal(size=70))
    return model


def test_callbacks_are_generated_and_draw_what_nutpie_draws():
    import nutpie

    from cloudcache.compat.nutpie_disk_cache import compile_disk_cached

    model = small_model()
    ours = compile_disk_cached(model)
    assert ours.compiled_logp_func._pyfunc.__name__ == "cloudcache_nutpie_logp"
    theirs = nutpie.compile_pymc_model(model)
    settings = {"draws": 50, "tune": 50, "chains": 2, "seed": 4, "progress_bar": False}
    mine = nutpie.sample(ours, **settings).posterior
    reference = nutpie.sample(theirs, **settings).posterior
    for name in ("a", "sigma"):
        np.testing.assert_array_equal(mine[name].values, reference[name].values)
    # new data through the pointer record, as nutpie's own
    new_x = np.linspace(-1, 1, 70)
    mine = nutpie.sample(ours.with_data(x=new_x), **settings).posterior
    reference = nutpie.sample(theirs.with_data(x=new_x), **settings).posterior
    np.testing.assert_array_equal(mine["a"].values, reference["a"].values)


PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import nutpie
    sys.path.insert(0, {tests!r})
    from test_nutpie_disk_cache import small_model
    from cloudcache.compat.nutpie_disk_cache import compile_disk_cached
    compiled = compile_disk_cached(small_model())
    settings = dict(draws=30, tune=30, chains=2, seed=9, progress_bar=False)
    tree = nutpie.sample(compiled, **settings)
    reference = nutpie.sample(nutpie.compile_pymc_model(small_model()), **settings)
    print(json.dumps({{
        "hits": [compiled.compiled_logp_func.cache_hits, compiled.compiled_expand_func.cache_hits],
        "same": bool(np.array_equal(tree.posterior["a"], reference.posterior["a"])),
    }}))
    """
)


def test_a_new_process_loads_the_callbacks_from_disk(tmp_path):
    env = {
        **os.environ,
        "PYTENSOR_FLAGS": f"base_compiledir={tmp_path}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    code = PROCESS.format(tests=str(ROOT / "tests"))
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["hits"] == [0, 0]
    assert runs[1]["hits"] == [1, 1]
    # Loaded from disk, the callbacks draw exactly what nutpie's own compilation draws in the
    # same process. (Across processes draws may differ in the last bits: code PyTensor compiles
    # fresh and code it loads from its cache round differently, for nutpie's own path too.)
    assert runs[1]["same"]


ARVIZ_PROCESS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pymc as pm
    import cloudcache as cc
    with pm.Model() as model:  # not the test module's: it imports nutpie (importorskip)
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y", mu, 1.0, observed=np.linspace(-1.0, 1.0, 70))
    with cc.cloud(model, cache=False, backend="nutpie", quiet=True) as run:
        tree = pm.sample(draws=30, tune=30, chains=2, random_seed=3, progressbar=False)
    print(run.last.backend, "arviz" in sys.modules, "scipy.stats" in sys.modules)
    import arviz
    print(callable(arviz.summary), arviz.from_dict.__module__)
    """
)


def test_a_nutpie_miss_does_not_import_arviz_and_arviz_stays_arviz():
    """nutpie is imported against a stand-in ``arviz`` (1.5 CPU-s of a fresh process saved);
    ``import arviz`` afterwards is the real ArviZ."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", ARVIZ_PROCESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.strip().splitlines()[-2:]
    assert first == "nutpie False False"
    assert second.startswith("True arviz_base")
