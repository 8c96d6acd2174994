"""The hit audit (``cloud(..., audit=True)``): stored draws are checked against the model's log
density; a stale entry (a key that missed a change) is detected, warned about and replaced."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from tiny_models import TINY, tiny_model

import cloudcache as cc
from cloudcache.calls.audit import LP_STATS, audit_failure, audit_points, compiled_model
from cloudcache.calls.records import CallRecord
from cloudcache.compat.pymc import as_tree
from cloudcache.stores.base import Entry, EntryRef
from cloudcache.stores.files import FileStore
from cloudcache.stores.resolve import process_memory_store

BACKENDS = ["numpyro", "pymc"]
CALL = {**TINY, "chains": 2}


def _sample(model: pm.Model, cache: object, backend: str, **options: object):
    """One ``pm.sample`` in a ``cloud`` block: (tree, record, RuntimeWarning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(model, cache=cache, backend=backend, quiet=True, **options) as run:
            tree = pm.sample(**CALL)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert run.last is not None
    return tree, run.last, [m for m in messages if m.startswith("cloudcache")]


def _same_draws(left: xr.DataTree, right: xr.DataTree, backend: str = "stored") -> bool:
    """Equal posteriors: exactly for stored draws and our numpyro backend (one key, one set of
    draws); within 1e-8 for two runs of PyMC's sampler (last bits differ across compiles)."""
    tolerance = 1e-8 if backend == "pymc" else 0.0
    return all(
        np.allclose(left["posterior"][name], right["posterior"][name], rtol=tolerance, atol=0)
        for name in right["posterior"].data_vars
    )


def test_audit_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="audit must be True or False"):
        cc.cloud(tiny_model(), audit="yes")


def test_audit_points_are_first_middle_last_of_first_and_last_chain() -> None:
    assert audit_points(4, 100) == [(0, 0), (0, 50), (0, 99), (3, 0), (3, 50), (3, 99)]
    assert audit_points(1, 1) == [(0, 0)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sound_hit_passes_the_audit_without_resampling(backend: str, tmp_path: Path) -> None:
    model = tiny_model()
    first, missed, _ = _sample(model, tmp_path, backend, audit=True)
    assert not missed.hit and missed.audit == "" and missed.backend == backend
    assert set(LP_STATS) & set(first["sample_stats"].data_vars)
    assert audit_failure(model, first) is None

    memory_hit, record, messages = _sample(model, tmp_path, backend, audit=True)
    assert record.hit and record.location == "memory" and record.audit == ""
    assert messages == []
    process_memory_store().clear()
    disk_hit, record, messages = _sample(tiny_model(), tmp_path, backend, audit=True)
    assert record.hit and record.location.endswith(".nc") and record.audit == ""
    assert messages == []
    assert _same_draws(disk_hit, first)  # a hit returns the stored draws
    assert _same_draws(memory_hit, first)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_planted_stale_entry_is_detected_resampled_and_replaced(
    backend: str, tmp_path: Path
) -> None:
    # Model A's posterior stored under model B's key stands for a key that missed a change.
    model_a, model_b = tiny_model(), tiny_model(shift=3.0)
    tree_a, record_a, _ = _sample(model_a, tmp_path, backend)
    tree_b, record_b, _ = _sample(model_b, tmp_path, backend)
    assert record_a.key != record_b.key
    ref_b = EntryRef(record_b.key, record_b.metadata["model"], record_b.metadata["label"])
    files = FileStore(tmp_path)
    files.put(ref_b, Entry(as_tree(tree_a), record_a.metadata))  # stores hold DataTrees
    process_memory_store().clear()

    # Without the audit the planted entry is served: this is the stale hit the audit exists for.
    served, record, _ = _sample(tiny_model(shift=3.0), tmp_path, backend)
    assert record.hit and _same_draws(served, tree_a)
    process_memory_store().clear()

    answer, record, messages = _sample(tiny_model(shift=3.0), tmp_path, backend, audit=True)
    assert not record.hit
    assert "log density at chain" in record.audit and "lp=" in record.audit
    assert f"audit={record.audit!r}" in repr(record) and "failed: " in record._repr_html_()
    assert len(messages) == 1 and "failed the hit audit" in messages[0], messages
    assert _same_draws(answer, tree_b, backend)
    assert not _same_draws(answer, tree_a, backend)

    replaced = files.get(ref_b)
    assert replaced is not None and _same_draws(replaced.tree, tree_b, backend)
    _, record, messages = _sample(tiny_model(shift=3.0), tmp_path, backend, audit=True)
    assert record.hit and record.audit == "" and messages == []


def test_audit_sees_an_in_place_change_of_the_models_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=20)
    y = 1.0 + 2.0 * x + rng.normal(0.0, 0.5, size=20)
    with pm.Model() as model:
        low = pm.Normal("low", 0.0, 1.0)
        offset = pm.Uniform("offset", low - 1.0, low + 1.0)  # transform bounds hold a variable
        slope = pm.Normal("slope", 0.0, 5.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", offset + slope * x, sigma, observed=y)
    tree = pm.sample(model=model, nuts_sampler="pymc", **CALL)
    assert audit_failure(model, tree) is None
    compiled = compiled_model(model)
    x *= 2.0  # the graph holds x by reference
    failed = audit_failure(model, tree)
    assert failed is not None and "log density at chain 0 draw 0" in failed
    assert compiled_model(model) is compiled  # compiled once; data read at call time


def test_entries_without_lp_or_free_variables_are_not_audited(
    sampled_tree: xr.DataTree,
) -> None:
    model = tiny_model()
    assert audit_failure(model, sampled_tree) is None
    stats = sampled_tree["sample_stats"].to_dataset().drop_vars("lp")
    no_lp = sampled_tree.copy()
    no_lp["sample_stats"] = xr.DataTree(stats)
    assert audit_failure(tiny_model(shift=5.0), no_lp) is None
    partial = sampled_tree.copy()
    partial["posterior"] = xr.DataTree(sampled_tree["posterior"].to_dataset()[["tiny::a"]])
    assert audit_failure(tiny_model(shift=5.0), partial) is None
    assert audit_failure(tiny_model(shift=5.0), sampled_tree) is not None


def test_call_record_audit_defaults_to_empty() -> None:
    assert CallRecord("sample", True, "ab" * 16, "memory", 0.0, "pymc").audit == ""


def _scaled_model(scale: float) -> pm.Model:
    with pm.Model(name="scaled") as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Deterministic("double", scale * mu)
        pm.Normal("y", mu, 1.0, observed=np.array([0.1, -0.3, 0.4]))
    return model


def test_audit_recomputes_the_stored_deterministics() -> None:
    tree = pm.sample(model=_scaled_model(2.0), nuts_sampler="pymc", **CALL)
    assert audit_failure(_scaled_model(2.0), tree) is None
    failed = audit_failure(_scaled_model(3.0), tree)  # same log density, other deterministic
    assert failed is not None and "deterministic scaled::double" in failed, failed


def test_stored_draws_of_another_shape_fail_the_audit(sampled_tree: xr.DataTree) -> None:
    with pm.Model(name="tiny", coords={"obs": np.arange(20)}) as wider:
        pm.Normal("a", 0.0, 2.0, shape=3)  # the stored "tiny::a" is a scalar
        pm.Normal("b", 0.0, 2.0)
        pm.HalfNormal("sigma", 1.0)
    failed = audit_failure(wider, sampled_tree)
    assert failed is not None and "cannot be evaluated at the stored draws" in failed, failed


def test_a_log_density_that_draws_random_numbers_is_not_audited(
    sampled_tree: xr.DataTree, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=20), rng.normal(size=20)
    with pm.Model(name="tiny") as model:
        x_batch, y_batch = pm.Minibatch(x, y, batch_size=5)
        a = pm.Normal("a", 0.0, 2.0)
        b = pm.Normal("b", 0.0, 2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", a + b * x_batch, sigma, observed=y_batch, total_size=20)
    with caplog.at_level(logging.INFO, logger="cloudcache"):
        assert audit_failure(model, sampled_tree) is None
    assert "not audited" in caplog.text and "random numbers" in caplog.text


def test_nutpie_logp_stat_is_audited(sampled_tree: xr.DataTree) -> None:
    assert LP_STATS == ("lp", "logp")
    stats = sampled_tree["sample_stats"].to_dataset().rename_vars({"lp": "logp"})
    as_nutpie = sampled_tree.copy()
    as_nutpie["sample_stats"] = xr.DataTree(stats)
    assert audit_failure(tiny_model(), as_nutpie) is None
    failed = audit_failure(tiny_model(shift=5.0), as_nutpie)
    assert failed is not None and "logp=" in failed, failed


def test_predictive_hits_are_served_unaudited(tmp_path: Path) -> None:
    model = tiny_model()
    for expected_hit in (False, True):
        with cc.cloud(model, cache=tmp_path, quiet=True, audit=True) as run:
            pm.sample_prior_predictive(draws=20, random_seed=1)
        assert run.last is not None and run.last.hit is expected_hit and run.last.audit == ""


def test_a_nutpie_hit_is_audited_with_its_logp_stat() -> None:
    model = tiny_model()
    first, missed, _ = _sample(model, True, "nutpie", audit=True)
    assert not missed.hit and missed.backend == "nutpie"
    assert "logp" in first["sample_stats"] and "lp" not in first["sample_stats"]
    assert audit_failure(model, first) is None
    assert audit_failure(tiny_model(shift=5.0), first) is not None  # the stat is really read
    _, record, messages = _sample(model, True, "nutpie", audit=True)
    assert record.hit and record.audit == "" and messages == []
