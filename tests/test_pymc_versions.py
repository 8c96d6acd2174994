"""What ``cloud()`` returns is what the running PyMC returns, and keys never cross PyMC majors.

PyMC 5's ``pm.sample`` and predictive functions return ``arviz.InferenceData``, PyMC 6's an
``xarray.DataTree``. A miss, a memory hit, a disk hit and a disk hit in a fresh process must
all give what an uncached call gives: the same type, groups (in order), variables, dims,
dtypes, coords and attributes (the miss ran anew, so only its run stamps may differ).

Set ``CLOUDCACHE_OTHER_PYTHON`` to the interpreter of the other PyMC major's environment to
also check, across the two environments, that one team cache holds entries of both and serves
each only to its own PyMC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pymc as pm
import pytest
from pymc_results import RETURNS_INFERENCEDATA, describe, group, group_names
from same_draws import assert_pymc_draws_close
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.calls.request import normalize_sample_call
from cloudcache.fingerprint.key import compute_key, major_minor
from cloudcache.stores.resolve import process_memory_store
from cloudcache.util.versions import installed_versions

TESTS = Path(__file__).parent
REPO = TESTS.parent
KINDS = ("sample", "sample_prior_predictive", "sample_posterior_predictive")

#: The three calls in a ``cloud()`` block; prints the description of each result and its record.
CALLS = textwrap.dedent(
    """
    import json, sys
    import pymc as pm
    import cloudcache as cc
    from pymc_results import describe
    from tiny_models import TINY, tiny_model

    with cc.cloud(tiny_model(), cache=sys.argv[1], backend="pymc", quiet=True) as run:
        results = [
            pm.sample(**TINY),
            pm.sample_prior_predictive(draws=20, random_seed=3),
        ]
        results.append(pm.sample_posterior_predictive(results[0], random_seed=5))
    print(json.dumps({
        "pymc": pm.__version__,
        "records": [[r.kind, r.hit, r.key] for r in run.records],
        "described": [describe(result) for result in results],
    }))
    """
)


def cached_calls(cache: object) -> tuple[list[Any], cc.Session]:
    """The three calls inside ``cloud(cache=cache)``, as :data:`CALLS` makes them."""
    with cc.cloud(tiny_model(), cache=cache, backend="pymc", quiet=True) as run:
        trace = pm.sample(**TINY)
        prior = pm.sample_prior_predictive(draws=20, random_seed=3)
        ppc = pm.sample_posterior_predictive(trace, random_seed=5)
    return [trace, prior, ppc], run


def uncached_calls() -> list[Any]:
    """The same three calls without cloudcache (PyMC's own sampler, as ``backend="pymc"``)."""
    with tiny_model():
        trace = pm.sample(nuts_sampler="pymc", **TINY)
        prior = pm.sample_prior_predictive(draws=20, random_seed=3)
        ppc = pm.sample_posterior_predictive(trace, random_seed=5, progressbar=False)
    return [trace, prior, ppc]


def run_calls_in(python: str, cache: Path) -> dict[str, Any]:
    """:data:`CALLS` in a fresh process of ``python`` on the disk cache ``cache``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    completed = subprocess.run(
        [python, "-c", CALLS, str(cache)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def open_plainly(path: str) -> Any:
    """An entry opened without cloudcache, with this PyMC's own reader."""
    if RETURNS_INFERENCEDATA:
        import arviz as az

        return az.from_netcdf(path)  # its default engine, as a user calls it
    import xarray as xr

    return xr.open_datatree(path, engine="h5netcdf").load()


def test_misses_and_hits_return_what_an_uncached_call_returns(tmp_path: Path) -> None:
    reference = uncached_calls()
    missed, run = cached_calls(tmp_path)
    assert [(r.kind, r.hit) for r in run.records] == [(kind, False) for kind in KINDS]
    memory, run = cached_calls(tmp_path)
    assert [(r.hit, r.location) for r in run.records] == [(True, "memory")] * 3
    process_memory_store().clear()
    disk, run = cached_calls(tmp_path)
    assert [r.hit for r in run.records] == [True] * 3
    assert all(r.location.endswith(".nc") for r in run.records)
    fresh = run_calls_in(sys.executable, tmp_path)
    assert [hit for _, hit, _ in fresh["records"]] == [True] * 3

    for kind, uncached, miss, memory_hit, disk_hit, fresh_hit in zip(
        KINDS, reference, missed, memory, disk, fresh["described"], strict=True
    ):
        assert type(miss) is type(uncached), kind
        assert describe(miss, stamps=False) == describe(uncached, stamps=False), kind
        assert describe(memory_hit) == describe(miss), kind  # a hit is the stored result
        assert describe(disk_hit) == describe(miss), kind
        assert fresh_hit == describe(miss), kind
    assert_pymc_draws_close(missed[0], reference[0])
    for index, name in ((1, "prior"), (2, "posterior_predictive")):
        assert_pymc_draws_close(group(missed[index], name), group(reference[index], name))


def test_disk_entries_open_with_this_pymcs_own_reader(tmp_path: Path) -> None:
    results, run = cached_calls(tmp_path)
    for result, record in zip(results, run.records, strict=True):
        opened = open_plainly(record.location)
        assert group_names(opened) == group_names(result)
        assert describe(opened)["groups"] == describe(result)["groups"]


def test_the_pymc_version_is_in_every_key() -> None:
    _, run = cached_calls(cc.MemoryStore())
    for record in run.records:
        versions = record.metadata["components"]["versions"]
        assert versions["pymc"] == major_minor(pm.__version__), record.kind
        assert record.metadata["versions"]["pymc"] == pm.__version__
    model = tiny_model()
    request = normalize_sample_call(pm.sample, (), dict(TINY))
    installed = installed_versions("pymc", "pytensor")
    other = {**installed, "pymc": "6.4.0" if pm.__version__.startswith("5.") else "5.28.5"}
    assert (
        compute_key(model, request, "pymc", installed).hex
        != compute_key(model, request, "pymc", other).hex
    )


def test_one_team_cache_serves_each_pymc_major_only_its_own_entries(tmp_path: Path) -> None:
    other_python = os.environ.get("CLOUDCACHE_OTHER_PYTHON")
    if not other_python:
        pytest.skip("CLOUDCACHE_OTHER_PYTHON (the other PyMC major's interpreter) is not set")
    written = run_calls_in(other_python, tmp_path)
    assert major_minor(written["pymc"])[0] != pm.__version__[0], "the same PyMC major twice"
    assert [hit for _, hit, _ in written["records"]] == [False] * 3

    _, run = cached_calls(tmp_path)
    assert [r.hit for r in run.records] == [False] * 3  # never the other major's entries
    theirs = {key for _, _, key in written["records"]}
    assert not theirs & {r.key for r in run.records}
    assert len(list(tmp_path.rglob("*.nc"))) == 6

    again = run_calls_in(other_python, tmp_path)
    assert again["records"] == [[kind, True, key] for kind, _, key in written["records"]]
    for python in (sys.executable, other_python):
        listed = subprocess.run(
            [python, "-m", "cloudcache", "ls", "--cache", str(tmp_path), "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=120,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert len(json.loads(listed.stdout)) == 6, python


def test_a_nuts_sampler_left_out_is_not_asked_for() -> None:
    """PyMC 5 spells its default ``nuts_sampler="pymc"``: left out, ``cloud(backend=...)`` picks."""
    from cloudcache.backends.registry import resolve_backend

    model = tiny_model()
    left_out = normalize_sample_call(pm.sample, (), dict(TINY))
    assert left_out.arguments["nuts_sampler"] is None
    assert "nuts_sampler" not in left_out.pymc_arguments()  # PyMC applies its own default
    assert resolve_backend("numpyro", model, left_out).backend_id == "numpyro"
    asked = normalize_sample_call(pm.sample, (), {**TINY, "nuts_sampler": "pymc"})
    assert asked.pymc_arguments()["nuts_sampler"] == "pymc"
    assert resolve_backend("numpyro", model, asked).backend_id == "pymc"
    assert asked.key_arguments() == left_out.key_arguments()


@pytest.mark.filterwarnings("ignore:The samples argument has been deprecated")
def test_renamed_predictive_arguments_key_as_their_new_name() -> None:
    """PyMC 5's prior predictive takes ``samples=`` for ``draws=``: one key, the same draws."""
    from cloudcache.compat.pymc import PREDICTIVE_RENAMED_ARGUMENTS

    if "samples" not in PREDICTIVE_RENAMED_ARGUMENTS:
        pytest.skip(f"PyMC {pm.__version__} has no `samples=` argument")
    results = []
    for spelling in ({"draws": 20}, {"samples": 20}):
        with cc.cloud(tiny_model(), cache=False, backend="pymc", quiet=True) as run:
            prior = pm.sample_prior_predictive(random_seed=3, **spelling)
        results.append((run.last.key, group(prior, "prior")))
    (key_a, prior_a), (key_b, prior_b) = results
    assert key_a == key_b
    assert prior_a.equals(prior_b)
