"""A posterior predictive is keyed by the content of the trace it reads (issue 20.1).

An edited trace (an edited hit of ``cloud(copy=True)``, in place or by replacing ``.values``)
must miss and give what PyMC gives for the edited draws; every unedited form of one trace (the
hit itself, copies, a tree re-opened from its ``.nc`` file, a tree extended in place, the
posterior node or Dataset alone) must hit one entry, in any order and in any process. Each hit
is checked against PyMC's own uncached answer for that very form.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import pytest
from pymc_results import RETURNS_INFERENCEDATA, copy_result, group
from tiny_models import TINY, tiny_model

import cloudcache as cc

QUIET = {"backend": "pymc", "quiet": True}
SEED = 5


def reopened(trace: Any, folder: Path) -> Any:
    """``trace`` written to a new NetCDF file and read back as the running PyMC reads results."""
    path = folder / f"trace{len(list(folder.glob('*.nc')))}.nc"
    trace.to_netcdf(str(path))
    if RETURNS_INFERENCEDATA:
        import arviz as az

        return az.from_netcdf(str(path))
    import xarray as xr

    return xr.load_datatree(path)


def predictive(trace: Any, cache: Any, **kwargs: Any) -> tuple[Any, cc.CallRecord]:
    with cc.cloud(tiny_model(), cache=cache, **QUIET) as run:
        result = pm.sample_posterior_predictive(trace, random_seed=SEED, **kwargs)
    return result, run.last


def uncached_draws(trace: Any) -> np.ndarray:
    """PyMC's own answer for ``trace`` (no cache anywhere)."""
    with tiny_model():
        result = pm.sample_posterior_predictive(trace, random_seed=SEED, progressbar=False)
    return np.asarray(group(result, "posterior_predictive")["tiny::y"])


def draws(result: Any) -> np.ndarray:
    return np.asarray(group(result, "posterior_predictive")["tiny::y"])


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A disk cache holding the tiny model's posterior."""
    root = tmp_path_factory.mktemp("cache")
    with cc.cloud(tiny_model(), cache=root, **QUIET):
        pm.sample(**TINY)
    return root


@pytest.fixture
def writable_hit(sampled: Path) -> Any:
    """A ``pm.sample`` hit handed out writable (``copy=True``): the very tree, not a copy."""
    with cc.cloud(tiny_model(), cache=sampled, copy=True, **QUIET) as run:
        tree = pm.sample(**TINY)
    assert run.last.hit
    return tree


def _scale_in_place(trace: Any) -> None:
    posterior = trace.posterior
    posterior["tiny::b"] *= 2.0


def _write_into_values(trace: Any) -> None:
    trace.posterior["tiny::b"].values[0, :5] = 3.0


def _replace_values(trace: Any) -> None:
    values = np.asarray(trace.posterior["tiny::b"].values)
    trace.posterior["tiny::b"].values = values + 0.5


EDITS: dict[str, Callable[[Any], None]] = {
    "scaled in place": _scale_in_place,
    "written into values": _write_into_values,
    "values replaced": _replace_values,
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_hit_misses_and_gives_the_edited_predictive(writable_hit, edit: str) -> None:
    trace = writable_hit
    store = cc.MemoryStore()
    before, first = predictive(trace, store)
    original = draws(before).copy()
    unedited_b = np.asarray(trace.posterior["tiny::b"]).copy()
    EDITS[edit](trace)
    assert not np.array_equal(np.asarray(trace.posterior["tiny::b"]), unedited_b)
    after, second = predictive(trace, store)
    assert not first.hit and not second.hit and second.key != first.key
    np.testing.assert_array_equal(draws(after), uncached_draws(trace))
    assert not np.array_equal(draws(after), original)


def _forms(trace: Any, tmp_path: Path) -> dict[str, Callable[[], Any]]:
    """Ways of handing PyMC the same trace (built lazily, each a fresh object)."""
    forms: dict[str, Callable[[], Any]] = {
        "the trace": lambda: trace,
        "a shallow copy": lambda: copy_result(trace),
        "a deep copy": lambda: copy_result(trace, deep=True),
        "re-opened from .nc": lambda: reopened(trace, tmp_path),
        "the posterior Dataset": lambda: group(trace, "posterior"),
    }
    if not RETURNS_INFERENCEDATA:
        forms["the posterior node"] = lambda: trace["posterior"]
    return forms


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_every_unedited_form_hits_one_entry_in_any_order(writable_hit, tmp_path, order) -> None:
    trace = writable_hit
    forms = list(_forms(trace, tmp_path).items())
    if order == "backward":
        forms.reverse()
    store = cc.MemoryStore()
    records = []
    for name, build in forms:
        given = build()
        result, record = predictive(given, store)
        np.testing.assert_array_equal(draws(result), uncached_draws(build()), err_msg=name)
        records.append(record)
    extended = copy_result(trace, deep=True)
    result, record = predictive(extended, store, extend_inferencedata=True)
    assert result is extended and record.hit
    _, again = predictive(extended, store)  # extended in place: still the same trace
    records.append(again)
    assert [r.hit for r in records] == [False] + [True] * (len(records) - 1)
    assert {r.key for r in records} == {records[0].key}


def test_an_extended_trace_hits_the_entry_of_its_first_predictive(writable_hit) -> None:
    store = cc.MemoryStore()
    mine = writable_hit
    _, first = predictive(mine, store, extend_inferencedata=True)
    _, second = predictive(mine, store)
    _, alone = predictive(group(mine, "posterior"), store)
    assert not first.hit and second.hit and alone.hit
    assert first.key == second.key == alone.key


OTHER_PROCESS = textwrap.dedent(
    """
    import json, sys
    import arviz, xarray as xr
    import pymc as pm
    import cloudcache as cc
    from pymc_results import RETURNS_INFERENCEDATA, group
    from tiny_models import tiny_model

    path, cache = sys.argv[1], sys.argv[2]
    trace = arviz.from_netcdf(path) if RETURNS_INFERENCEDATA else xr.load_datatree(path)
    with cc.cloud(tiny_model(), cache=cache, backend="pymc", quiet=True) as run:
        pm.sample_posterior_predictive(group(trace, "posterior"), random_seed=5)
    print(json.dumps([run.last.hit, run.last.key]))
    """
)


def test_a_posterior_read_in_another_process_hits(writable_hit, tmp_path: Path) -> None:
    trace = copy_result(writable_hit, deep=True)
    path = tmp_path / "trace.nc"
    trace.to_netcdf(str(path))
    _, record = predictive(trace, tmp_path / "cache")
    tests = str(Path(__file__).parent)
    inherited = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, inherited]))}
    completed = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(path), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    hit, key = json.loads(completed.stdout.strip().splitlines()[-1])
    assert not record.hit and hit and key == record.key


def data_fed_model() -> pm.Model:
    """A free random variable and a deterministic that read ``pm.Data``."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    with pm.Model() as model:
        xd = pm.Data("x", x)
        b = pm.Normal("b", mu=xd.mean(), sigma=1.0)
        mu = pm.Deterministic("mu", b * xd)
        pm.Normal("y", mu, 1.0, observed=2.0 * x + rng.normal(size=12))
    return model


def test_the_trace_forms_share_a_key_exactly_when_pymc_gives_the_same_draws() -> None:
    """A trace with ``constant_data`` and its posterior alone, on a model whose traced variables
    read data: PyMC 6 gives one answer (it keeps traced random variables, and recomputes the
    deterministic from the same draws and data); PyMC 5 resamples ``b`` for the posterior alone
    (no ``constant_data`` says the data is unchanged). The keys must agree exactly when the
    draws do."""
    with cc.cloud(data_fed_model(), cache=False, **QUIET):
        trace = pm.sample(**TINY)
    answers = {}
    for form, given in {"tree": trace, "posterior alone": group(trace, "posterior")}.items():
        with cc.cloud(data_fed_model(), cache=False, **QUIET) as run:
            result = pm.sample_posterior_predictive(given, random_seed=SEED)
        answers[form] = (run.last.key, np.asarray(group(result, "posterior_predictive")["y"]))
    (tree_key, tree_draws), (alone_key, alone_draws) = answers.values()
    same_draws = np.array_equal(tree_draws, alone_draws)
    assert (tree_key == alone_key) == same_draws
    assert same_draws == (not RETURNS_INFERENCEDATA)  # the rule each PyMC follows
