"""The NumPyro runner's programs kept on disk: a new process loads them instead of converting
the model to JAX and tracing it, and samples exactly the same draws. Real processes, a real
JAX compilation cache folder of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from cloudcache.backends.numpyro.stored_programs import PROGRAMS

REPO = Path(__file__).resolve().parents[1]

#: One fresh process: samples a small regression with the NumPyro runner (keyword arguments of
#: the call as JSON in argv[1]), prints its draws, whether PyTensor's JAX conversion was
#: imported (it is whenever a program is traced), whether NumPyro was, and the library the
#: result names.
SAMPLE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from test_numpyro_backend import regression_model, run
    tree = run(regression_model(), random_seed=5, **json.loads(sys.argv[1]))
    print(json.dumps({{
        "beta": tree.posterior["beta"].values.tolist(),
        "lp": tree.sample_stats["lp"].values.tolist(),
        "traced": "pytensor.link.jax.dispatch" in sys.modules,
        "numpyro_imported": "numpyro.infer" in sys.modules,  # ArviZ puts a lazy "numpyro"
        "library": [tree.posterior.attrs.get(name) for name in (
            "inference_library", "inference_library_version")],
    }}))
    """
).format(tests=str(REPO / "tests"))


def sample_in_a_new_process(jax_cache: Path, **call: object) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLOUDCACHE_JAX_CACHE_DIR": str(jax_cache)}
    out = subprocess.run(
        [sys.executable, "-c", SAMPLE, json.dumps(call)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def kept_files(jax_cache: Path) -> list[Path]:
    folder = jax_cache / PROGRAMS
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A first process that compiles everything into an empty JAX cache folder."""
    jax_cache = tmp_path_factory.mktemp("jax-cache")
    result = sample_in_a_new_process(jax_cache)
    assert result["traced"]
    return jax_cache, result


def test_a_new_process_loads_the_programs_and_samples_the_same_draws(
    first: tuple[Path, dict],
) -> None:
    jax_cache, compiled = first
    assert kept_files(jax_cache)  # the init, step, outputs and log-density programs
    loaded = sample_in_a_new_process(jax_cache)
    assert not loaded["traced"]  # nothing converted to JAX, nothing traced
    assert not loaded["numpyro_imported"]  # the state's classes are stand-ins
    np.testing.assert_array_equal(loaded["beta"], compiled["beta"])
    np.testing.assert_array_equal(loaded["lp"], compiled["lp"])
    # the result still names the sampling library and its version, as PyMC's JAX path does
    assert loaded["library"] == compiled["library"] == ["numpyro", version("numpyro")]


def test_a_torn_or_foreign_program_file_is_traced_again(
    first: tuple[Path, dict], tmp_path: Path
) -> None:
    jax_cache, compiled = first
    copy = tmp_path / "jax-cache"
    for path in jax_cache.rglob("*"):
        target = copy / path.relative_to(jax_cache)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    files = kept_files(copy)
    files[0].write_bytes(files[0].read_bytes()[: len(files[0].read_bytes()) // 2])  # torn
    for path in files[1:]:
        path.write_bytes(b"not a program")  # foreign
    again = sample_in_a_new_process(copy)
    assert again["traced"]
    np.testing.assert_array_equal(again["beta"], compiled["beta"])


def test_deleted_programs_are_compiled_and_kept_again(first: tuple[Path, dict]) -> None:
    """With the kept files gone but JAX's own cache full, the next process compiles afresh and
    keeps what it compiled (an executable JAX loads from its cache serialises without its
    machine code: kept, it would fail in the process after)."""
    jax_cache, compiled = first
    for path in kept_files(jax_cache):
        path.unlink()
    rebuilt = sample_in_a_new_process(jax_cache)
    assert rebuilt["traced"] and kept_files(jax_cache)
    again = sample_in_a_new_process(jax_cache)
    assert not again["traced"]
    np.testing.assert_array_equal(again["beta"], compiled["beta"])
    np.testing.assert_array_equal(again["lp"], compiled["lp"])


def test_a_program_calling_lapack_is_loaded_and_samples_the_same_draws(tmp_path: Path) -> None:
    """A dense mass matrix puts LAPACK's Cholesky factor and triangular solve into the step
    program. JAX sets LAPACK up only when it lowers such a call, so a new process that loads the
    program without lowering anything crashed at its first step (a segmentation fault) until
    the kept file listed its custom calls and the loader set their kernels up first."""
    dense = {"init": "jitter+adapt_full"}
    compiled = sample_in_a_new_process(tmp_path, **dense)
    assert compiled["traced"]
    loaded = sample_in_a_new_process(tmp_path, **dense)
    assert not loaded["traced"]
    np.testing.assert_array_equal(loaded["beta"], compiled["beta"])
    np.testing.assert_array_equal(loaded["lp"], compiled["lp"])
