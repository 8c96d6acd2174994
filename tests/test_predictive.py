"""Cached prior and posterior predictive sampling: hits, misses, trace identity, extension."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from pymc_results import RETURNS_INFERENCEDATA, copy_result, group, group_names
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.calls.records import CallRecord
from cloudcache.calls.trace_content import trace_identity

QUIET = {"backend": "pymc", "quiet": True}

#: Another compile mode for forward sampling: PyMC 6 takes ``backend=``, PyMC 5 only a mode name.
OTHER_COMPILE_MODE = (
    {"backend": "c"}
    if "backend" in inspect.signature(pm.sample_prior_predictive).parameters
    else {"compile_kwargs": {"mode": "FAST_COMPILE"}}
)


@pytest.fixture(scope="module")
def cached_posterior() -> tuple[xr.DataTree, cc.MemoryStore, str]:
    """A posterior sampled inside a block (so the cache knows it), its store and its key."""
    store = cc.MemoryStore()
    with cc.cloud(tiny_model(), cache=store, **QUIET) as run:
        tree = pm.sample(**TINY)
    return tree, store, run.last.key


def prior(cache: object, **kwargs: object) -> tuple[xr.DataTree, CallRecord]:
    with cc.cloud(tiny_model(), cache=cache, **QUIET) as run:
        tree = pm.sample_prior_predictive(**{"draws": 20, "random_seed": 3, **kwargs})
    return tree, run.last


def posterior(trace: object, cache: object, model: pm.Model | None = None, **kwargs: object):
    with cc.cloud(model or tiny_model(), cache=cache, **QUIET) as run:
        tree = pm.sample_posterior_predictive(trace, **{"random_seed": 5, **kwargs})
    return tree, run.last


# -- prior predictive ------------------------------------------------------------------------
def test_prior_repeat_hits_with_identical_draws() -> None:
    store = cc.MemoryStore()
    first, miss = prior(store)
    with cc.cloud(tiny_model(), cache=store, **QUIET) as run:
        second = pm.sample_prior_predictive(20, random_seed=3, compile_kwargs={})  # positional
    assert (miss.kind, miss.hit) == ("sample_prior_predictive", False)
    assert run.last.hit and run.last.key == miss.key
    xr.testing.assert_identical(group(first, "prior"), group(second, "prior"))


@pytest.mark.parametrize(
    "change",
    [{"draws": 21}, {"random_seed": 4}, {"var_names": ["tiny::a"]}, OTHER_COMPILE_MODE],
    ids=["draws", "seed", "var_names", "compile-backend"],
)
def test_prior_changed_argument_misses(change: dict) -> None:
    store = cc.MemoryStore()
    _, base = prior(store)
    _, changed = prior(store, **change)
    assert not changed.hit and changed.key != base.key


def test_prior_var_names_order_and_spelling_do_not_matter() -> None:
    store = cc.MemoryStore()
    _, first = prior(store, var_names=["tiny::b", "tiny::a"])
    _, second = prior(store, var_names=("tiny::a", "tiny::b"))
    assert second.hit and second.key == first.key


def test_prior_changed_data_misses() -> None:
    store = cc.MemoryStore()
    _, base = prior(store)
    model = tiny_model()
    with cc.cloud(model, cache=store, **QUIET) as run:
        pm.set_data({"x": np.linspace(-1.0, 1.0, 20)})
        pm.sample_prior_predictive(20, random_seed=3)
    assert not run.last.hit and run.last.key != base.key


def test_prior_disk_entry_is_a_readable_file(tmp_path: Path) -> None:
    tree, record = prior(tmp_path)
    path = Path(record.location)
    assert path.parent == tmp_path / "tiny" and path.name.startswith("prior_draws20-")
    with xr.open_datatree(path, engine="h5netcdf") as opened:
        np.testing.assert_array_equal(opened["prior"]["tiny::a"].values, tree["prior"]["tiny::a"])


def test_prior_overwrite_resamples_and_replaces(tmp_path: Path) -> None:
    _, first = prior(tmp_path)
    with cc.cloud(tiny_model(), cache=tmp_path, overwrite=True, **QUIET) as run:
        pm.sample_prior_predictive(draws=20, random_seed=3)
    assert not run.last.hit and run.last.key == first.key
    assert run.last.metadata["created"] >= first.metadata["created"]


def test_prior_without_a_store_still_samples() -> None:
    tree, record = prior(False)
    assert not record.hit and record.location == "uncached" and "prior" in group_names(tree)


def test_prior_dict_result_runs_uncached_with_a_reason() -> None:
    result, record = prior(cc.MemoryStore(), return_inferencedata=False)
    assert isinstance(result, dict) and record.location == "uncached"
    assert "return_inferencedata=False" in record.reason


def test_bad_call_is_reported_by_pymc() -> None:
    with (
        cc.cloud(tiny_model(), cache=cc.MemoryStore(), **QUIET) as run,
        pytest.raises(TypeError, match="bogus"),
    ):
        pm.sample_prior_predictive(20, bogus=1)
    assert run.records == []


# -- posterior predictive --------------------------------------------------------------------
def test_posterior_repeat_hits_and_labels_the_trace_by_content(cached_posterior) -> None:
    trace, _, _ = cached_posterior
    store = cc.MemoryStore()
    first, miss = posterior(trace, store)
    second, hit = posterior(trace, store)
    assert (miss.kind, miss.hit, hit.hit) == ("sample_posterior_predictive", False, True)
    assert miss.metadata["label"] == f"ppc_{trace_identity(trace, tiny_model())[1]}"
    xr.testing.assert_identical(
        group(first, "posterior_predictive"), group(second, "posterior_predictive")
    )


def test_posterior_repeat_on_the_same_model_object_hits(cached_posterior) -> None:
    """PyMC 5 appends the observed variables to ``model.observed_RVs`` again on every call."""
    trace, _, _ = cached_posterior
    model = tiny_model()
    with cc.cloud(model, cache=cc.MemoryStore(), **QUIET) as run:
        first = pm.sample_posterior_predictive(trace, random_seed=5)
        second = pm.sample_posterior_predictive(trace, random_seed=5)
    assert [r.hit for r in run.records] == [False, True]
    assert run.records[0].key == run.records[1].key
    xr.testing.assert_identical(
        group(first, "posterior_predictive"), group(second, "posterior_predictive")
    )


@pytest.mark.parametrize(
    "change",
    [{"random_seed": 6}, {"var_names": ["tiny::a", "tiny::y"]}, {"predictions": True}],
    ids=["seed", "var_names", "predictions"],
)
def test_posterior_changed_argument_misses(cached_posterior, change: dict) -> None:
    trace, _, _ = cached_posterior
    store = cc.MemoryStore()
    _, base = posterior(trace, store)
    _, changed = posterior(trace, store, **change)
    assert not changed.hit and changed.key != base.key


def test_posterior_changed_data_misses(cached_posterior) -> None:
    trace, _, _ = cached_posterior
    store = cc.MemoryStore()
    _, base = posterior(trace, store)
    model = tiny_model()
    with cc.cloud(model, cache=store, **QUIET) as run:
        pm.set_data({"x": np.linspace(-1.0, 1.0, 20)})
        pm.sample_posterior_predictive(trace, random_seed=5)
    assert not run.last.hit and run.last.key != base.key


def test_posterior_changed_trace_content_misses(cached_posterior) -> None:
    trace, _, _ = cached_posterior
    store = cc.MemoryStore()
    _, base = posterior(trace, store)
    copied = copy_result(trace, deep=True)
    _, same_content = posterior(copied, store)
    altered = copy_result(trace, deep=True)
    altered["posterior"]["tiny::b"] = altered["posterior"]["tiny::b"] + 1.0
    _, changed = posterior(altered, store)
    assert same_content.hit and same_content.key == base.key  # content hashed: one entry
    assert not changed.hit and changed.key != base.key


def test_replacing_a_variable_of_a_trace_changes_its_identity(cached_posterior) -> None:
    trace, _, _ = cached_posterior
    tree = copy_result(trace, deep=True)
    before, _ = trace_identity(tree, tiny_model())
    tree["posterior"]["tiny::a"] = tree["posterior"]["tiny::a"] * 2.0
    replaced, _ = trace_identity(tree, tiny_model())
    copied, _ = trace_identity(copy_result(tree, deep=True), tiny_model())
    assert replaced != before and replaced == copied


def test_uncached_trace_is_hashed_by_content() -> None:
    with cc.cloud(tiny_model(), cache=False, **QUIET):
        fresh = pm.sample(**TINY)
    model = tiny_model()
    assert trace_identity(fresh, model) == trace_identity(copy_result(fresh, deep=True), model)


def test_extend_on_hit_matches_pymc(cached_posterior) -> None:
    trace, _, _ = cached_posterior
    store = cc.MemoryStore()
    posterior(copy_result(trace), store)  # fills the cache (a copy: identified by content)
    mine = copy_result(trace)
    extended, record = posterior(mine, store, extend_inferencedata=True)
    reference = copy_result(trace)

    def extend_uncached() -> list[str]:
        with warnings.catch_warnings(record=True) as caught, tiny_model():
            warnings.simplefilter("always")
            pm.sample_posterior_predictive(
                reference, random_seed=5, extend_inferencedata=True, progressbar=False
            )
        return [str(w.message) for w in caught if "already exist" in str(w.message)]

    extend_uncached()
    assert record.hit and extended is mine
    assert group_names(mine) == group_names(reference)
    xr.testing.assert_equal(
        group(mine, "posterior_predictive"), group(reference, "posterior_predictive")
    )
    # Extending again: PyMC 6 warns and replaces the group, PyMC 5 keeps it silently.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        posterior(mine, store, extend_inferencedata=True)
    ours = [str(w.message) for w in caught if "already exist" in str(w.message)]
    assert bool(ours) == bool(extend_uncached()) == (not RETURNS_INFERENCEDATA)
    assert group_names(mine) == group_names(reference)
    xr.testing.assert_equal(
        group(mine, "posterior_predictive"), group(reference, "posterior_predictive")
    )


def test_extend_on_miss_does_not_store_the_callers_groups(cached_posterior, tmp_path) -> None:
    trace, _, _ = cached_posterior
    mine = copy_result(trace)
    _, record = posterior(mine, tmp_path, extend_inferencedata=True)
    assert "posterior_predictive" in group_names(mine)
    with xr.open_datatree(record.location, engine="h5netcdf") as stored:
        assert "posterior_predictive" in stored.children
        assert not {"posterior", "sample_stats"} & set(stored.children)


def test_node_and_dataset_traces_are_hashed_by_content(cached_posterior) -> None:
    trace, _, _ = cached_posterior
    store = cc.MemoryStore()
    givens = [trace["posterior"], group(trace, "posterior")]  # a node and a Dataset
    if RETURNS_INFERENCEDATA:
        givens = givens[1:]  # PyMC 5: a group is a Dataset already
    records = []
    for given in givens:
        records += [posterior(given, store)[1], posterior(given.copy(deep=True), store)[1]]
    assert [r.hit for r in records] == [False] + [True] * (len(records) - 1)  # one trace
    _, record = posterior(trace["posterior"], store, return_inferencedata=False)
    assert record.location == "uncached" and "return_inferencedata" in record.reason


# -- across processes ------------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import json, sys
    import pymc as pm
    import cloudcache as cc
    from tiny_models import TINY, tiny_model

    with cc.cloud(tiny_model(), cache=sys.argv[1], backend="pymc", quiet=True) as run:
        pm.sample_prior_predictive(20, random_seed=3)
        trace = pm.sample(**TINY)
        ppc = pm.sample_posterior_predictive(trace, random_seed=5)
    print(json.dumps({
        "records": [[r.kind, r.hit, r.key] for r in run.records],
        "ppc": ppc["posterior_predictive"]["tiny::y"].values.tolist(),
    }))
    """
)


def test_entries_written_by_another_process_hit(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    completed = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    written = json.loads(completed.stdout.strip().splitlines()[-1])
    with cc.cloud(tiny_model(), cache=tmp_path, **QUIET) as run:
        pm.sample_prior_predictive(draws=20, random_seed=3)
        trace = pm.sample(**TINY)
        ppc = pm.sample_posterior_predictive(trace, random_seed=5)
    assert [r[1] for r in written["records"]] == [False, False, False]
    assert [[r.kind, r.hit, r.key] for r in run.records] == [
        [kind, True, key] for kind, _, key in written["records"]
    ]
    np.testing.assert_array_equal(ppc["posterior_predictive"]["tiny::y"].values, written["ppc"])
