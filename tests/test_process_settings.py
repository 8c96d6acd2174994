"""What a cloud() miss leaves behind in the user's process (docs/backends.md, "Process-wide
settings"): JAX's compilation cache settings are back as they were, the user's own
``pm.sample(nuts_sampler="numpyro")`` compiles as it would without cloudcache, and the only
``jax_funcify`` registrations added are for cloudcache's own op classes. The CPU device count
is the one lasting change, and ``CLOUDCACHE_CPU_DEVICES=off`` leaves it alone.

Each case runs in a fresh process: JAX's settings and devices are fixed once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

WORKER = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import jax
import pymc as pm
from pytensor.link.jax.dispatch import jax_funcify
from tiny_models import tiny_model
import cloudcache as cc

def settings():
    return {
        "dir": jax.config.jax_compilation_cache_dir,
        "min": jax.config.jax_persistent_cache_min_compile_time_secs,
    }

def files(directory):
    return sorted(str(p) for p in Path(directory).rglob("*") if p.is_file())

ours = os.environ["CLOUDCACHE_JAX_CACHE_DIR"]
registered = set(jax_funcify.registry)
before = settings()
call = dict(draws=20, tune=20, chains=2, random_seed=1, progressbar=False)
with cc.cloud(tiny_model(), cache=False, backend="numpyro", quiet=True) as run:
    pm.sample(**call)
report = {"backend": run.last.backend, "before": before, "after": settings()}
report["ours"] = len(files(ours))
added = set(jax_funcify.registry) - registered
report["added"] = sorted(f"{c.__module__}.{c.__qualname__}" for c in added)
if sys.argv[2] == "user-run":
    pm.sample(model=tiny_model(), nuts_sampler="numpyro", **call)
    report["ours_after_user_run"] = len(files(ours))
    report["after_user_run"] = settings()
report["devices"] = len(jax.devices("cpu"))
print(json.dumps(report))
"""


def run_worker(tmp_path: Path, mode: str, **environment: str) -> dict:
    env = {
        **os.environ,
        "CLOUDCACHE_JAX_CACHE_DIR": str(tmp_path / "jax"),
        "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(TESTS)])),
        **environment,
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)
    env.pop("XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(TESTS), mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def test_a_miss_leaves_jaxs_settings_and_the_users_own_runs_alone(tmp_path: Path) -> None:
    report = run_worker(tmp_path, "user-run")
    assert report["backend"] == "numpyro"
    assert report["before"] == {"dir": None, "min": report["before"]["min"]}
    assert report["after"] == report["before"]  # cache directory and minimum time restored
    assert report["ours"] > 0, "cloudcache's own compilations went to its cache"
    assert report["ours_after_user_run"] == report["ours"], "the user's run wrote there too"
    assert report["after_user_run"] == report["before"]
    assert all(name.startswith("cloudcache.") for name in report["added"]), report["added"]
    assert report["devices"] == cores()  # the one lasting change, documented


def test_cpu_devices_off_leaves_jaxs_device_count_alone(tmp_path: Path) -> None:
    report = run_worker(tmp_path, "miss-only", CLOUDCACHE_CPU_DEVICES="off")
    assert report["backend"] == "numpyro"
    assert report["devices"] == 1


def test_a_bad_cpu_devices_value_is_named_in_the_error() -> None:
    from cloudcache.backends.numpyro.devices import default_cpu_device_count

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLOUDCACHE_CPU_DEVICES", "many")
        with pytest.raises(ValueError, match="CLOUDCACHE_CPU_DEVICES must be a number"):
            default_cpu_device_count()
        patch.setenv("CLOUDCACHE_CPU_DEVICES", "3")
        assert default_cpu_device_count() == 3
        patch.setenv("CLOUDCACHE_CPU_DEVICES", "OFF")
        assert default_cpu_device_count() is None
