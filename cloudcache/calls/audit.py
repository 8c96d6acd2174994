"""Hit audit: does a stored posterior agree with the model as it is now?

At a few draws chosen deterministically (:func:`audit_points`: the first, middle and last draw
of the first and the last chain), the model's log density is evaluated at the stored
(constrained) values and compared with the ``lp`` sample stat recorded when they were sampled,
and every stored deterministic is recomputed from them. ``lp`` is what PyMC's NUTS records: the
model's joint log density, Jacobian of the value transforms included, at the unconstrained
point; the numpyro backend records the same quantity (minus NumPyro's potential energy) and
nutpie records it as ``logp`` (:data:`LP_STATS`).

The model is compiled once per model object (:func:`compiled_model`) as a function of the
constrained values of all audited draws at once: the value transforms' ``forward`` maps them to
the unconstrained point inside the graph, which is vectorised over a leading axis of draws.
Array constants of the graph are inputs, read at call time, and ``pm.Data``/shared values are
read live, so a compiled function never hides an in-place change of the model's data. It is
rebuilt when the model's variables change.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pytensor.compile.mode import Mode
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.replace import clone_replace, vectorize_graph
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.random.type import RandomType

from cloudcache.compat.pymc import as_tree

#: Names of the sample stat holding each draw's model log density, in the order they are looked
#: for: ``lp`` (PyMC's NUTS, the numpyro backend), ``logp`` (nutpie, also through
#: ``pm.sample(nuts_sampler="nutpie")``). Both are the log density the audit recomputes.
LP_STATS = ("lp", "logp")

#: Relative tolerance of the comparison, by the itemsize of the log density's dtype:
#: ``|model - stored| <= tolerance * max(1, |stored|)``. Recomputed float64 log densities differ
#: from what PyMC's NUTS, the numpyro backend and nutpie recorded by at most ~7e-15 relative.
RELATIVE_TOLERANCE = {8: 1e-8, 4: 1e-4}

#: PyTensor mode of the compiled log density: NumPy evaluation (``perform``), the cheap rewrites,
#: nothing compiled to C or numba. On the radon-shaped model the first audit of a process costs
#: ~1 s instead of 3-20 s (numba or C linkers, cold compile cache); six draws take ~0.5 ms.
COMPILE_MODE = Mode(linker="py", optimizer="fast_compile")

_log = logging.getLogger("cloudcache")


@dataclass(frozen=True)
class CompiledModel:
    """The model as a compiled function of its free variables' stored (constrained) values.

    Called with the values of several draws stacked along a first axis (one array per name in
    ``names``), it gives ``[log density, *deterministics]``, each with that first axis.
    """

    signature: tuple[Any, ...]
    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    deterministics: tuple[str, ...]
    constants: tuple[Constant, ...]
    function: Callable[..., Any]
    tolerance: float

    def __call__(self, values: Sequence[np.ndarray]) -> list[np.ndarray]:
        data = [np.asarray(constant.data) for constant in self.constants]
        return list(self.function(*values, *data))


_compiled: weakref.WeakKeyDictionary[pm.Model, CompiledModel] = weakref.WeakKeyDictionary()


def _model_signature(model: pm.Model) -> tuple[Any, ...]:
    """Identities of everything the compiled function was built from (same-process only)."""
    variables = [
        *model.free_RVs,
        *model.observed_RVs,
        *model.potentials,
        *model.deterministics,
        *(model.rvs_to_values[rv] for rv in [*model.free_RVs, *model.observed_RVs]),
        *(model.rvs_to_transforms.get(rv) for rv in model.free_RVs),
    ]
    return (model.check_bounds, *map(id, variables))


def _lift_array_constants(
    outputs: list[Variable],
) -> tuple[list[Variable], list[Variable], list[Constant]]:
    """Replace every array constant of the ``outputs``' graph by an input; returns the new graph."""
    constants = [
        var
        for var in graph_inputs(outputs)
        if isinstance(var, Constant) and isinstance(var.data, np.ndarray) and var.data.ndim >= 1
    ]
    inputs = [constant.type() for constant in constants]
    if not constants:
        return outputs, inputs, constants
    lifted = clone_replace(outputs, replace=dict(zip(constants, inputs, strict=True)))
    return list(lifted), inputs, constants


def _is_random(graph: Variable) -> bool:
    return any(isinstance(var.type, RandomType) for var in graph_inputs([graph]))


def _build(model: pm.Model, signature: tuple[Any, ...]) -> CompiledModel:
    free = list(model.free_RVs)
    constrained = [rv.type(name=rv.name) for rv in free]
    unconstrained = []
    for rv, value in zip(free, constrained, strict=True):
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            value = transform.forward(value, *rv.owner.inputs)
        unconstrained.append(value)
    # Transform parameters and deterministics are written in terms of the variables themselves.
    as_values = dict(zip(free, constrained, strict=True))
    as_values.update({rv: model.rvs_to_values[rv] for rv in model.observed_RVs})
    replaced = clone_replace([*unconstrained, *model.deterministics], replace=as_values)
    unconstrained = replaced[: len(free)]
    # Deterministics that draw random numbers cannot be recomputed: they are not checked.
    kept = [
        (var, value)
        for var, value in zip(model.deterministics, replaced[len(free) :], strict=True)
        if not _is_random(value)
    ]
    deterministics = [var for var, _ in kept]
    deterministic_values = [value for _, value in kept]
    value_vars = [model.rvs_to_values[rv] for rv in free]
    [density] = clone_replace(
        [model.logp(jacobian=True, sum=True)],
        replace=dict(zip(value_vars, unconstrained, strict=True)),
    )
    if _is_random(density):
        raise ValueError("it draws random numbers (pm.Minibatch, for example)")
    outputs, data_inputs, constants = _lift_array_constants([density, *deterministic_values])
    # All audited draws in one call: the graph batched over a leading axis of draws.
    stacked = [
        pt.tensor(dtype=v.dtype, shape=(None, *v.type.shape), name=v.name) for v in constrained
    ]
    outputs = vectorize_graph(outputs, replace=dict(zip(constrained, stacked, strict=True)))
    with model:  # PyMC reads check_bounds from the model context
        function = pm.pytensorf.compile(
            [*stacked, *data_inputs], outputs, mode=COMPILE_MODE, on_unused_input="ignore"
        )
    itemsize = np.dtype(density.dtype).itemsize
    return CompiledModel(
        signature=signature,
        names=tuple(rv.name for rv in free),
        dtypes=tuple(rv.dtype for rv in free),
        deterministics=tuple(var.name for var in deterministics),
        constants=tuple(constants),
        function=function,
        tolerance=RELATIVE_TOLERANCE.get(itemsize, RELATIVE_TOLERANCE[4]),
    )


def compiled_model(model: pm.Model) -> CompiledModel:
    """``model`` compiled for the audit, memoised per model object and its variables."""
    signature = _model_signature(model)
    cached = _compiled.get(model)
    if cached is not None and cached.signature == signature:
        return cached
    built = _build(model, signature)
    _compiled[model] = built
    return built


def audit_points(chains: int, draws: int) -> list[tuple[int, int]]:
    """Positions ``(chain, draw)`` checked: first, middle, last draw of the first and last chain."""
    chosen = {(c, d) for c in (0, chains - 1) for d in (0, draws // 2, draws - 1)}
    return sorted(chosen)


def _lp_stat(stats: xr.Dataset) -> str | None:
    """The name of the stored per-draw log density (None: the entry has none)."""
    return next((name for name in LP_STATS if name in stats.data_vars), None)


def _unauditable(model: pm.Model, tree: xr.DataTree) -> str | None:
    """Why ``tree`` cannot be audited against ``model`` (None: it can)."""
    if "posterior" not in tree.children or "sample_stats" not in tree.children:
        return "the entry has no posterior or no sample_stats"
    posterior, stats = tree["posterior"].dataset, tree["sample_stats"].dataset
    if _lp_stat(stats) is None:
        return f"the entry records none of the sample stats {', '.join(LP_STATS)}"
    missing = [rv.name for rv in model.free_RVs if rv.name not in posterior.data_vars]
    if missing:
        return f"the posterior does not hold {', '.join(missing)}"
    if posterior.sizes.get("chain", 0) == 0 or posterior.sizes.get("draw", 0) == 0:
        return "the posterior holds no draws"
    return None


def _mismatches(stored: Any, computed: Any, tolerance: float) -> np.ndarray:
    """Elementwise: ``|computed - stored| > tolerance * max(1, |stored|)`` (equal NaN/inf agree)."""
    stored, computed = np.asarray(stored, dtype=float), np.asarray(computed, dtype=float)
    with np.errstate(invalid="ignore"):
        far = np.abs(computed - stored) > tolerance * np.maximum(1.0, np.abs(stored))
        same = (stored == computed) | (np.isnan(stored) & np.isnan(computed))
        return (far | np.isnan(computed - stored)) & ~same


def audit_failure(model: pm.Model, tree: Any) -> str | None:
    """None if ``tree`` agrees with ``model`` (or cannot be checked), else the failed check.

    ``tree``: a DataTree, or what PyMC 5's ``pm.sample`` returns (an ``InferenceData``).

    At each of :func:`audit_points`, the model's log density must equal the stored ``lp`` and
    every stored deterministic must equal its value recomputed from the stored free variables.
    Entries that cannot be checked (no ``lp`` stat, a posterior without every free variable,
    for example after ``var_names=``, or a model PyTensor cannot compile with NumPy evaluation)
    pass, with the reason in the ``cloudcache`` log. Stored draws the model cannot be evaluated
    at (another shape, for example) fail.
    """
    tree = as_tree(tree)
    reason = _unauditable(model, tree)
    if reason is None:
        try:
            compiled = compiled_model(model)
        except Exception as error:  # an audit never breaks a hit it cannot judge
            reason = f"the model's log density could not be compiled ({error})"
    if reason is not None:
        _log.info("cloudcache: hit not audited: %s", reason)
        return None
    # Plain variables of the groups' datasets: much cheaper than DataArrays on every hit.
    posterior, stats = tree["posterior"].dataset, tree["sample_stats"].dataset

    def draws_of(name: str, group: xr.Dataset = posterior) -> np.ndarray:
        return group.variables[name].transpose("chain", "draw", ...).values

    points = audit_points(posterior.sizes["chain"], posterior.sizes["draw"])
    chains, draws = (np.array(axis) for axis in zip(*points, strict=True))
    values = [
        np.asarray(draws_of(name)[chains, draws], dtype=dtype)
        for name, dtype in zip(compiled.names, compiled.dtypes, strict=True)
    ]
    try:
        outputs = compiled(values)
    except Exception as error:
        return f"the model cannot be evaluated at the stored draws ({error})"
    lp_stat = _lp_stat(stats)
    assert lp_stat is not None
    stored_lp = draws_of(lp_stat, stats)[chains, draws]
    kept = [
        (index, name, draws_of(name)[chains, draws])
        for index, name in enumerate(compiled.deterministics, start=1)
        if name in posterior.data_vars
    ]
    chain_labels = posterior.variables["chain"].values
    for point, (chain, draw) in enumerate(points):
        where = f"chain {chain_labels[chain]} draw {draw}"
        stored, computed = float(stored_lp[point]), float(outputs[0][point])
        if _mismatches(stored, computed, compiled.tolerance):
            return (
                f"the model's log density at {where} is {computed:.10g}, the entry recorded "
                f"{lp_stat}={stored:.10g} (relative tolerance {compiled.tolerance:g})"
            )
        for index, name, stored_values in kept:
            stored_value, value = stored_values[point], outputs[index][point]
            if np.shape(stored_value) != np.shape(value) or np.any(
                _mismatches(stored_value, value, compiled.tolerance)
            ):
                return (
                    f"the deterministic {name} at {where} differs from the value stored in the "
                    f"entry (relative tolerance {compiled.tolerance:g})"
                )
    return None
