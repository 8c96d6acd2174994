"""What the same key gives in two fresh processes: what docs/reliability.md promises.

The NumPyro backend (ours) is bit-identical for the same key on the same machine, whether the
XLA executable was just compiled or loaded from JAX's persistent compilation cache. PyMC's
own sampler agrees across processes only up to the tolerance in ``same_draws`` (checked by
the concurrency, crash-safety and Dask tests, which compare PyMC draws across processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent

SAMPLE_IN_A_FRESH_PROCESS = """
import json, sys
sys.path.insert(0, {tests!r})
import pymc as pm
from same_draws import posterior_values
from tiny_models import TINY, tiny_model
import cloudcache as cc
from cloudcache.stores.format.netcdf import tree_checksum
with cc.cloud(tiny_model(), cache=False, backend={backend!r}, quiet=True) as run:
    tree = pm.sample(**TINY)
print(json.dumps({{"key": run.last.key, "checksum": tree_checksum(tree["posterior"]),
                  "values": posterior_values(tree)}}))
"""


def sample_in_fresh_process(backend: str, jax_cache: Path) -> dict:
    script = SAMPLE_IN_A_FRESH_PROCESS.format(tests=str(TESTS), backend=backend)
    environment = {**os.environ, "CLOUDCACHE_JAX_CACHE_DIR": str(jax_cache)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_numpyro_draws_are_bit_identical_with_a_cold_and_a_warm_compile_cache(
    tmp_path: Path,
) -> None:
    jax_cache = tmp_path / "jax-cache"  # empty: the first process compiles, the second loads
    cold = sample_in_fresh_process("numpyro", jax_cache)
    assert any(jax_cache.iterdir()), "the first process did not fill the compilation cache"
    warm = sample_in_fresh_process("numpyro", jax_cache)
    assert warm["key"] == cold["key"]
    assert warm["checksum"] == cold["checksum"]  # exact: every bit of every draw
    assert warm["values"] == cold["values"]
