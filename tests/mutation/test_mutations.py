"""Proof by mutation: every change that can move the posterior moves the key; spellings that
cannot, do not.

Mutations are applied the way a notebook user would make them (edit an array in place, reassign
a global, redefine a helper, flip a flag). Where the question is whether the posterior changes,
both sides are sampled uncached and the key must differ exactly when the draws do. Spelling rules
sample both spellings uncached through ``cloud(cache=False)`` and require identical draws and
equal keys. Cross-process stability lives in ``tests/test_key_matrix.py`` and
``tests/test_key_content.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import zoo
from pytensor.compile.ops import as_op

import cloudcache as cc
from cloudcache.calls.request import normalize_sample_call
from cloudcache.compat.pymc import SAMPLE_RENAMED_ARGUMENTS
from cloudcache.fingerprint import compute_key

CALL: dict[str, Any] = {
    "draws": 20,
    "tune": 20,
    "chains": 1,
    "random_seed": 3,
    "progressbar": False,
}
VERSIONS = {"pymc": pm.__version__}


def key_of(model: pm.Model, **call: Any) -> str:
    request = normalize_sample_call(pm.sample, (), {**CALL, **call})
    return compute_key(model, request, "pymc", VERSIONS).hex


def posterior_draws(model: pm.Model) -> dict[str, np.ndarray]:
    """Uncached draws from PyMC's own sampler (deterministic within one process)."""
    tree = pm.sample(model=model, nuts_sampler="pymc", compute_convergence_checks=False, **CALL)
    return {name: np.asarray(tree["posterior"][name]) for name in tree["posterior"].data_vars}


def draws_differ(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a)


@dataclass(frozen=True)
class Mutation:
    """``build`` a model, then ``mutate`` it (in place or by rebuilding) and key both."""

    name: str
    build: Callable[[], Any]
    mutate: Callable[[Any, pytest.MonkeyPatch], pm.Model]
    #: Sample both sides: the key must differ exactly when the draws do.
    sample: bool = False
    #: Whether the mutation reaches the model at all (PyMC copies some inputs when it builds).
    changes_model: bool = True


def _model(built: Any) -> pm.Model:
    return built[0] if isinstance(built, tuple) else built


def _covariate() -> tuple[pm.Model, np.ndarray]:
    x = zoo.X.copy()
    return zoo.covariate(x, zoo.Y), x


def _double(held: np.ndarray) -> None:
    held *= 2.0


def _hier_with(**arrays: np.ndarray) -> tuple[pm.Model, dict[str, np.ndarray]]:
    return zoo.hierarchical(**arrays), arrays


def _redefined_center(value: Any, mu: Any) -> Any:
    return (value - mu) * 1.5


def _other_backward(self: Any, value: Any, *inputs: Any) -> Any:
    return value + 2 * self.offset


def _as_op_model() -> pm.Model:
    @as_op(itypes=[pt.dscalar], otypes=[pt.dscalar])
    def squash(b: np.ndarray) -> np.ndarray:
        return np.asarray(np.tanh(b) * zoo.SCALE)

    with pm.Model() as model:
        b = pm.Normal("b")
        pm.Deterministic("d", squash(b))
    return model


def _set_x(model: pm.Model, values: np.ndarray) -> pm.Model:
    with model:
        pm.set_data({"x": values})
    return model


def _shared_pair() -> tuple[pm.Model, Any, Any]:
    return zoo.same_named_shared(np.linspace(0, 1, 4), np.linspace(1, 2, 4))


def _double_shared(shared: Any) -> None:
    shared.set_value(shared.get_value() * 2.0)


MUTATIONS: list[Mutation] = [
    # -- arrays held by reference, edited in place after the model is built ----------------
    Mutation(
        "covariate_in_place",
        _covariate,
        lambda built, mp: (_double(built[1]), built[0])[1],
        sample=True,
    ),
    Mutation(
        "observed_in_place",
        lambda: _hier_with(y=zoo.Y.copy()),
        lambda built, mp: (_double(built[1]["y"]), built[0])[1],
        sample=True,
        changes_model=False,  # PyMC copies observed arrays: the edit cannot reach the model
    ),
    Mutation(
        "index_array_in_place",
        lambda: _hier_with(group=zoo.GROUP.copy()),
        lambda built, mp: (built[1]["group"].__setitem__(slice(None), 2 - zoo.GROUP), built[0])[1],
        sample=True,
    ),
    Mutation(
        "shared_value_in_place",
        zoo.hierarchical,
        lambda m, mp: (_double(m["x"].get_value(borrow=True)), m)[1],
    ),
    Mutation("set_data", zoo.hierarchical, lambda m, mp: _set_x(m, zoo.X + 1.0)),
    Mutation(
        "same_named_shared_first",
        _shared_pair,
        lambda built, mp: (_double_shared(built[1]), built[0])[1],
    ),
    Mutation(
        "same_named_shared_second",
        _shared_pair,
        lambda built, mp: (_double_shared(built[2]), built[0])[1],
    ),
    Mutation(
        "missing_mask_moved",
        zoo.masked,
        lambda m, mp: zoo.masked(_moved()),
    ),
    # -- model flags, transforms, priors ----------------------------------------------------
    Mutation(
        "check_bounds_off", zoo.hierarchical, lambda m, mp: zoo.hierarchical(check_bounds=False)
    ),
    Mutation("prior_parameter", zoo.hierarchical, lambda m, mp: zoo.hierarchical(prior_sd=2.0)),
    Mutation("interval_bounds", zoo.transformed, lambda m, mp: zoo.transformed(upper=6.0)),
    Mutation("custom_transform_state", zoo.transformed, lambda m, mp: zoo.transformed(offset=1.0)),
    Mutation(
        "custom_transform_code",
        zoo.transformed,
        lambda m, mp: (mp.setattr(zoo.Shift, "backward", _other_backward), m)[1],
    ),
    # -- Python code inside the model ------------------------------------------------------
    Mutation(
        "custom_dist_global",
        zoo.custom_dist,
        lambda m, mp: (mp.setattr(zoo, "SCALE", 2.0), m)[1],
    ),
    Mutation(
        "custom_dist_helper_redefined",
        zoo.custom_dist,
        lambda m, mp: (mp.setattr(zoo, "center", _redefined_center), m)[1],
    ),
    Mutation(
        "custom_dist_closure", lambda: zoo.closure_dist(1.0), lambda m, mp: zoo.closure_dist(2.0)
    ),
    Mutation(
        "potential_helper_global",
        zoo.potential,
        lambda m, mp: (mp.setattr(zoo, "STRENGTH", 2.0), zoo.potential())[1],
    ),
    Mutation("potential_argument", zoo.potential, lambda m, mp: zoo.potential(weight=3.0)),
    Mutation("as_op_global", _as_op_model, lambda m, mp: (mp.setattr(zoo, "SCALE", 2.0), m)[1]),
]


def _moved() -> np.ndarray:
    """The masked model's data with its NaNs at other positions."""
    y = zoo.Y.copy()
    y[[3, 9]] = np.nan
    return y


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_mutation_changes_the_key(mutation: Mutation, monkeypatch: pytest.MonkeyPatch) -> None:
    built = mutation.build()
    before_key = key_of(_model(built))
    before_draws = posterior_draws(_model(built)) if mutation.sample else None
    after = mutation.mutate(built, monkeypatch)
    after_key = key_of(after)
    if mutation.sample:
        assert before_draws is not None
        changed = draws_differ(before_draws, posterior_draws(after))
        assert (before_key != after_key) == changed, (
            f"{mutation.name}: draws {'differ' if changed else 'equal'}, "
            f"keys {'differ' if before_key != after_key else 'equal'}"
        )
    if mutation.changes_model:
        assert before_key != after_key, f"{mutation.name} kept the key: a stale hit"
    else:
        assert before_key == after_key, f"{mutation.name} changed the key: a needless miss"


def test_editing_and_restoring_in_place_restores_the_key() -> None:
    model, x = _covariate()
    before = key_of(model)
    x *= 2.0
    assert key_of(model) != before
    x /= 2.0
    assert key_of(model) == before


def test_changing_a_global_after_building_a_potential_keeps_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The potential's graph was built already: the helper's globals no longer matter."""
    model = zoo.potential()
    before = key_of(model)
    monkeypatch.setattr(zoo, "STRENGTH", 5.0)
    assert key_of(model) == before


def test_rebuilding_every_zoo_model_keeps_its_key() -> None:
    for build in (zoo.hierarchical, zoo.custom_dist, zoo.potential, zoo.transformed, zoo.masked):
        assert key_of(build()) == key_of(build()), build.__name__
    assert key_of(zoo.closure_dist(1.0)) == key_of(zoo.closure_dist(1.0))


# -- spellings that cannot change the result ------------------------------------------------
@dataclass(frozen=True)
class Spelling:
    name: str
    first: dict[str, Any]
    second: dict[str, Any]
    backend: str = "pymc"


SPELLINGS: list[Spelling] = [
    Spelling(
        "seed_numpy_int", {"random_seed": 4, "chains": 2}, {"random_seed": np.int64(4), "chains": 2}
    ),
    Spelling(
        "seed_generator",
        {"random_seed": 4, "chains": 2},
        {"random_seed": np.random.default_rng(4), "chains": 2},
    ),
    Spelling("target_accept_numpy", {"target_accept": 0.9}, {"target_accept": np.float64(0.9)}),
    Spelling("n_init_without_advi", {}, {"n_init": 1234}),
    Spelling(
        "initvals_numpy", {"initvals": {"beta": 0.3}}, {"initvals": {"beta": np.float64(0.3)}}
    ),
    Spelling("nuts_sampler_names_backend_pymc", {}, {"nuts_sampler": "pymc"}),
    Spelling("nuts_sampler_names_backend", {}, {"nuts_sampler": "numpyro"}, backend="numpyro"),
    Spelling(
        "seed_generator_numpyro",
        {"random_seed": 4},
        {"random_seed": np.random.default_rng(4)},
        backend="numpyro",
    ),
]
#: ``idata_kwargs`` PyMC reads alike, and ``var_names`` in another order, on every backend.
for _backend in ("pymc", "numpyro", "nutpie"):
    SPELLINGS += [
        Spelling(f"idata_kwargs_none_is_empty_{_backend}", {}, {"idata_kwargs": {}}, _backend),
        Spelling(
            f"idata_kwargs_log_likelihood_false_{_backend}",
            {"idata_kwargs": None},
            {"idata_kwargs": {"log_likelihood": False}},
            _backend,
        ),
        Spelling(f"initvals_none_is_empty_{_backend}", {}, {"initvals": {}}, _backend),
        Spelling(
            f"var_names_order_{_backend}",
            {"var_names": ["alpha", "beta", "mu"]},
            {"var_names": ["mu", "beta", "alpha"]},
            _backend,
        ),
    ]
if "start" in SAMPLE_RENAMED_ARGUMENTS:  # PyMC 5 still takes `start=` for `initvals=`
    SPELLINGS.append(
        Spelling("start_is_initvals", {"initvals": {"beta": 0.3}}, {"start": {"beta": 0.3}})
    )


def _cloud_sample(model: pm.Model, backend: str, call: dict[str, Any]) -> tuple[str, Any]:
    with cc.cloud(model, cache=False, backend=backend, quiet=True) as run:
        tree = pm.sample(**{**CALL, **call})
    assert run.last is not None and run.last.key
    return run.last.key, tree["posterior"]


@pytest.mark.parametrize("spelling", SPELLINGS, ids=lambda s: s.name)
def test_equivalent_spellings_give_identical_draws_and_one_key(spelling: Spelling) -> None:
    model = zoo.hierarchical()
    key_a, first = _cloud_sample(model, spelling.backend, spelling.first)
    key_b, second = _cloud_sample(model, spelling.backend, spelling.second)
    assert set(first.data_vars) == set(second.data_vars)
    for name in first.data_vars:
        np.testing.assert_array_equal(first[name].values, second[name].values, err_msg=name)
    assert key_a == key_b
