"""Predictive spellings PyMC reads alike are one key (issue 20.2).

Each rule samples both spellings uncached (``cloud(cache=False)`` still computes the key) and
requires the same groups, equal values and one key. Spellings that can differ are checked to
stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from pymc_results import RETURNS_INFERENCEDATA, group, group_names
from tiny_models import TINY, tiny_model

import cloudcache as cc

QUIET = {"backend": "pymc", "quiet": True}
PYMC_6 = not RETURNS_INFERENCEDATA


def derived_model() -> pm.Model:
    """The tiny model plus a deterministic of the observed variable (a default output)."""
    model = tiny_model()
    with model:
        pm.Deterministic("twice", model["tiny::y"] * 2.0)
    return model


@pytest.fixture(scope="module")
def trace() -> Any:
    with cc.cloud(derived_model(), cache=False, **QUIET):
        return pm.sample(**TINY)


@dataclass(frozen=True)
class Spelling:
    name: str
    first: dict[str, Any]
    second: dict[str, Any]
    posterior: bool = True
    pymc6_only: bool = False


SPELLINGS = [
    Spelling(
        "default var_names spelled out",
        {},
        {"var_names": ["tiny::y", "tiny::twice"]},
        pymc6_only=True,  # PyMC 5's default is keyed as None (not spelled out)
    ),
    Spelling("idata_kwargs None is {}", {"idata_kwargs": None}, {"idata_kwargs": {}}),
    Spelling("idata_kwargs coords {} is none", {}, {"idata_kwargs": {"coords": {}}}),
    Spelling("sample_dims default spelled out", {}, {"sample_dims": ["chain", "draw"]}),
    Spelling("freeze_vars empty is none", {}, {"freeze_vars": []}, pymc6_only=True),
    Spelling(
        "freeze_vars is a set",
        {"freeze_vars": ["tiny::a", "tiny::b"]},
        {"freeze_vars": ["tiny::b", "tiny::a", "tiny::b"]},
        pymc6_only=True,
    ),
    Spelling(
        "var_names repeats dropped",
        {"var_names": ["tiny::y", "tiny::twice"]},
        {"var_names": ["tiny::y", "tiny::twice", "tiny::y"]},
        pymc6_only=True,
    ),
    Spelling(
        "sample_vars repeats dropped",
        {"sample_vars": ["tiny::b", "tiny::y"]},
        {"sample_vars": ["tiny::b", "tiny::y", "tiny::b"]},
        pymc6_only=True,
    ),
    Spelling(
        "var_names defaults to sample_vars",
        {"sample_vars": ["tiny::b", "tiny::y"]},
        {"sample_vars": ["tiny::b", "tiny::y"], "var_names": ["tiny::b", "tiny::y"]},
        pymc6_only=True,
    ),
    Spelling(
        "prior default var_names spelled out",
        {},
        {"var_names": ["tiny::twice", "tiny::y", "tiny::sigma", "tiny::b", "tiny::a"]},
        posterior=False,
    ),
    Spelling(
        "prior var_names is a set",
        {"var_names": ["tiny::a", "tiny::b"]},
        {"var_names": ["tiny::b", "tiny::a", "tiny::b"]},
        posterior=False,
    ),
    Spelling(
        "prior idata_kwargs None is {}",
        {"idata_kwargs": None},
        {"idata_kwargs": {}},
        posterior=False,
    ),
]


def sampled(trace: Any, spelling: Spelling, call: dict[str, Any]) -> tuple[Any, str]:
    with cc.cloud(derived_model(), cache=False, **QUIET) as run:
        if spelling.posterior:
            result = pm.sample_posterior_predictive(trace, random_seed=5, **call)
        else:
            result = pm.sample_prior_predictive(draws=20, random_seed=3, **call)
    assert run.last is not None and run.last.key
    return result, run.last.key


def assert_same_result(first: Any, second: Any) -> None:
    assert group_names(first) == group_names(second)
    for name in group_names(first):
        xr.testing.assert_equal(group(first, name), group(second, name))


@pytest.mark.parametrize("spelling", SPELLINGS, ids=lambda s: s.name)
def test_equivalent_predictive_spellings_give_one_key(trace, spelling: Spelling) -> None:
    if spelling.pymc6_only and not PYMC_6:
        pytest.skip("PyMC 6 only: see the spelling")
    first, key_a = sampled(trace, spelling, spelling.first)
    second, key_b = sampled(trace, spelling, spelling.second)
    assert_same_result(first, second)
    assert key_a == key_b


def test_posterior_var_names_order_stays_in_the_key(trace) -> None:
    """The outputs' order is the order PyMC compiles and seeds them in: not proven alike."""
    spelling = SPELLINGS[0]
    _, forward = sampled(trace, spelling, {"var_names": ["tiny::y", "tiny::twice"]})
    _, backward = sampled(trace, spelling, {"var_names": ["tiny::twice", "tiny::y"]})
    assert forward != backward


def test_a_subset_of_the_default_outputs_is_another_key(trace) -> None:
    spelling = SPELLINGS[0]
    default, key_default = sampled(trace, spelling, {})
    subset, key_subset = sampled(trace, spelling, {"var_names": ["tiny::y"]})
    assert key_default != key_subset
    assert "tiny::twice" in group(default, "posterior_predictive")
    assert "tiny::twice" not in group(subset, "posterior_predictive")
    np.testing.assert_array_equal(
        group(default, "posterior_predictive")["tiny::y"],
        group(subset, "posterior_predictive")["tiny::y"],
    )
