"""Which PyMC is installed, the one seam where its result type differs, and PyMC's private APIs.

PyMC 6 returns an ``xarray.DataTree`` from ``pm.sample`` and the predictive functions; PyMC 5
returns an ArviZ 0.x ``InferenceData``. Inside cloudcache every result is a DataTree (stores,
the audit, the backends' output, the cache path); :func:`as_tree` turns what PyMC's own
functions return into one, and :func:`as_pymc_result` turns a tree into what the installed
PyMC's functions return, just before the caller gets it. Both share the arrays (no copy).

The private PyMC functions cloudcache relies on are called only here, each behind a named
function that ``tests/test_compat.py`` checks against the installed PyMC: the default number of
cores (:func:`default_cores`), the forward samplers' and SMC's seeds (:func:`forward_seed`,
:func:`seeds_per_chain`), the jittered
start points (:func:`init_jitter`: PyMC's ``_init_jitter`` step for step, so that the
initial-point functions can be kept) and the per-class log density registries
(:func:`class_registries`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pymc
import xarray as xr

#: The major version of the installed PyMC (5 or 6).
PYMC_MAJOR: int = int(pymc.__version__.split(".", 1)[0])

#: Whether ``pm.sample`` returns ArviZ 0.x ``InferenceData`` (PyMC 5) rather than a DataTree.
RETURNS_INFERENCEDATA: bool = PYMC_MAJOR < 6

#: Keyword arguments ``pm.sample`` still accepts under an old name (PyMC 5: ``start=`` is
#: ``initvals=``, with a FutureWarning), old name -> the argument it means.
SAMPLE_RENAMED_ARGUMENTS: dict[str, str] = {"start": "initvals"} if PYMC_MAJOR < 6 else {}

#: Deprecated aliases of the predictive functions' arguments (PyMC 5's prior predictive takes
#: ``samples=`` for ``draws=``; when given, it wins), alias -> the argument it sets.
PREDICTIVE_RENAMED_ARGUMENTS: dict[str, str] = {"samples": "draws"} if PYMC_MAJOR < 6 else {}

#: Whether one string passed where the predictive functions take names (``var_names="y"``)
#: means that one name (PyMC 6). PyMC 5 iterates it, so it names its characters.
ONE_STRING_IS_ONE_NAME: bool = PYMC_MAJOR >= 6

#: Whether ``sample_posterior_predictive`` resamples a trace's random variable downstream of
#: data that changed since sampling (PyMC 5). PyMC 6 keeps every random variable of the trace
#: not named in ``sample_vars``, and recomputes only deterministics.
TRACE_RVS_FOLLOW_DATA: bool = PYMC_MAJOR < 6

#: Whether ``sample_posterior_predictive`` drops repeated ``var_names``/``sample_vars`` (keeping
#: the first) and outputs ``sample_vars`` when ``var_names`` is not given (PyMC 6).
PREDICTIVE_NAMES_DEDUPLICATED: bool = PYMC_MAJOR >= 6

#: The trace type ``sample_posterior_predictive`` reads groups from (and extends in place).
TRACE_TREE_NAME: str = "InferenceData" if RETURNS_INFERENCEDATA else "DataTree"


def is_result(value: Any) -> bool:
    """Whether ``value`` is a sampling result of either shape (DataTree or InferenceData)."""
    return isinstance(value, xr.DataTree) or is_inferencedata(value)


def is_pymc_result(value: Any) -> bool:
    """Whether ``value`` has the type the installed PyMC returns (and reads a trace from)."""
    if RETURNS_INFERENCEDATA:
        return is_inferencedata(value)
    return isinstance(value, xr.DataTree)


def result_groups(result: Any) -> dict[str, Any]:
    """The groups of a result (DataTree children or InferenceData datasets) by name."""
    if is_inferencedata(result):
        return {name: result[name] for name in result.groups()}
    return dict(result.children)


def extend_inferencedata(target: Any, addition: Any, *, predictions: bool) -> Any:
    """Add ``addition``'s groups to the InferenceData ``target`` in place, as PyMC 5 does.

    PyMC 5's ``extend_inferencedata=True`` keeps the groups ``target`` already has
    (``InferenceData.extend``), or for ``predictions=True`` concatenates the new groups into it
    (``arviz.concat(dim=None)``, which refuses groups it already has).
    """
    from arviz import concat

    if predictions:
        concat([target, addition], dim=None, inplace=True)
    else:
        target.extend(addition)
    return target


def as_tree(result: Any) -> Any:
    """``result`` as a DataTree (an ``InferenceData`` converted, arrays shared); others as given."""
    if is_inferencedata(result):
        tree = xr.DataTree.from_dict({f"/{name}": result[name] for name in result.groups()})
        tree.attrs = dict(result.attrs)
        return tree
    return result


def as_pymc_result(tree: Any) -> Any:
    """``tree`` as the installed PyMC returns it: ``InferenceData`` on PyMC 5 (arrays shared).

    Only a tree of groups is a PyMC result: one with data at its root (another call kind's
    result) is returned as it is.
    """
    if RETURNS_INFERENCEDATA and isinstance(tree, xr.DataTree) and not tree.variables:
        from arviz import InferenceData

        groups = {name: node.to_dataset(inherit=False) for name, node in tree.children.items()}
        return InferenceData(attrs=dict(tree.attrs), **groups)
    return tree


def as_pymc_result_in_order(tree: Any, order: Sequence[str]) -> Any:
    """:func:`as_pymc_result` with the groups in ``order`` (then any others in the tree's order).

    ``InferenceData(**groups)`` puts ArviZ's known groups first; a result built group by group
    (pymc-extras adds ``fit`` and ``unconstrained_posterior`` before ``observed_data``) lists
    them in the order they were added, which ``add_groups`` one at a time rebuilds.
    """
    if not isinstance(tree, xr.DataTree) or tree.variables:
        return tree
    names = [name for name in order if name in tree.children]
    names += [name for name in tree.children if name not in names]
    if RETURNS_INFERENCEDATA:
        from arviz import InferenceData

        result = InferenceData(attrs=dict(tree.attrs))
        for name in names:
            result.add_groups({name: tree[name].to_dataset(inherit=False)})
        return result
    groups = {f"/{name}": tree[name].to_dataset(inherit=False) for name in names}
    ordered = xr.DataTree.from_dict(groups)
    ordered.attrs = dict(tree.attrs)
    return ordered


def default_prior_outputs(model: Any) -> tuple[str, ...]:
    """What ``sample_prior_predictive`` samples without ``var_names``, as its sorted names.

    Every basic random variable and deterministic (PyMC 5 and 6 alike); a ``var_names`` given
    is read as a set too, so this is the key form of both.
    """
    return tuple(sorted({str(v.name) for v in (*model.basic_RVs, *model.deterministics)}))


def default_predictive_outputs(model: Any, observed_names: list[str]) -> tuple[str, ...] | None:
    """The outputs PyMC 6's ``sample_posterior_predictive`` picks with neither ``var_names``
    nor ``sample_vars``, in its order; ``None`` on PyMC 5 (its default is keyed as given).

    ``observed_names``: the names in the trace's ``observed_data`` group, in order.
    The observed random variables, the names of the trace's ``observed_data`` that are other
    model variables, then the deterministics that depend on any of them.
    """
    if PYMC_MAJOR < 6:
        return None
    from pymc.sampling.forward import observed_dependent_deterministics

    outputs = list(model.observed_RVs)
    extra = []
    for name in observed_names:
        if name in model and model[name] not in outputs:
            outputs.append(model[name])
            extra.append(model[name])
    known = set(outputs)
    outputs += [d for d in observed_dependent_deterministics(model, extra) if d not in known]
    return tuple(dict.fromkeys(str(variable.name) for variable in outputs))


def is_inferencedata(value: Any) -> bool:
    """Whether ``value`` is PyMC 5's result type (always ``False`` on PyMC 6)."""
    if not RETURNS_INFERENCEDATA:
        return False
    from arviz import InferenceData

    return isinstance(value, InferenceData)


# -- what pm.sample derives, and PyMC's private functions ------------------------------------
def default_cores() -> int:
    """The CPU count ``pm.sample`` starts from when ``cores=None`` (PyMC's ``_cpu_count``)."""
    from pymc.sampling.mcmc import _cpu_count

    return int(_cpu_count())


def chain_seeds(random_seed: Any, chains: int) -> list[int]:
    """Per-chain seeds derived exactly as ``pm.sample`` derives them."""
    from pymc.util import get_random_generator

    if isinstance(random_seed, bool) or (
        isinstance(random_seed, int | np.integer) and random_seed == -1
    ):
        raise ValueError("random_seed must be an int >= 0, a sequence, a Generator or None")
    rngs = get_random_generator(random_seed).spawn(chains)
    return [int(rng.integers(2**30)) for rng in rngs]


def seeds_per_chain(random_seed: Any, chains: int) -> list[int]:
    """The per-chain integer seeds PyMC's ``_get_seeds_per_chain`` derives (``sample_smc``).

    Called on a copy, so the caller's generator is not advanced. Raises what PyMC raises
    (``ValueError``/``TypeError``) for a seed it cannot use.
    """
    from pymc.util import _get_seeds_per_chain

    return [int(seed) for seed in _get_seeds_per_chain(copy.deepcopy(random_seed), chains)]


def forward_seed(random_seed: Any) -> int:
    """The one seed PyMC's forward samplers (and PyMC 5's nutpie path) derive from ``random_seed``.

    PyMC calls ``_get_seeds_per_chain(random_seed, 1)``, which draws from a generator's current
    state; it is called here on a copy, so the caller's generator is not advanced. Raises what
    PyMC raises (``ValueError``/``TypeError``) for a seed it cannot use.
    """
    return seeds_per_chain(random_seed, 1)[0]


def initial_point_functions(
    model: Any, initvals: Any, *, jitter: bool, chains: int
) -> list[Callable[[int], dict[str, np.ndarray]]]:
    """PyMC's initial-point function of each chain: ``function(seed)`` is a start point,
    jittered when ``jitter`` (each call reseeds it, so one function serves every seed)."""
    from pymc.initial_point import make_initial_point_fns_per_chain

    return make_initial_point_fns_per_chain(
        model=model,
        overrides=initvals,
        jitter_rvs=set(model.free_RVs) if jitter else set(),
        chains=chains,
    )


def init_jitter(
    model: Any,
    initvals: Any,
    *,
    seeds: Sequence[int],
    jitter: bool,
    jitter_max_retries: int,
    logp_fn: Callable[[dict[str, np.ndarray]], float],
    functions: Sequence[Callable[[int], dict[str, np.ndarray]]] | None = None,
) -> list[dict[str, np.ndarray]]:
    """One start point per seed, jittered and retried exactly as ``pm.sample`` does (PyMC's
    private ``_init_jitter``, which ``tests/test_compat.py`` compares it with).

    ``logp_fn(point)`` judges a jittered point (a non-finite value means: jitter again, with a
    seed drawn from the chain's seed; after ``jitter_max_retries`` PyMC's
    ``check_start_vals`` says why). ``functions``: the chains' :func:`initial_point_functions`,
    when the caller keeps them (building them compiles a function).
    """
    if functions is None:
        functions = initial_point_functions(model, initvals, jitter=jitter, chains=len(seeds))
    if not jitter:
        return [function(seed) for function, seed in zip(functions, seeds, strict=True)]
    points = []
    for function, first_seed in zip(functions, seeds, strict=True):
        seed: Any = first_seed
        retries = np.random.default_rng(first_seed)
        for attempt in range(jitter_max_retries + 1):
            point = function(seed)
            if np.isfinite(logp_fn(point)):
                break
            if attempt == jitter_max_retries:
                model.check_start_vals(point)  # PyMC's SamplingError, naming the variables
            seed = retries.integers(2**30, dtype=np.int64)
        points.append(point)
    return points


def class_registries() -> dict[str, Any]:
    """PyMC's per-class registries (``functools.singledispatch``), by name.

    A distribution class built at run time (``pm.CustomDist`` makes one per call) carries its
    log density, log CDF, inverse CDF and support point here, not in its own attributes.
    """
    from pymc.distributions.distribution import _support_point
    from pymc.logprob.abstract import _icdf, _logcdf, _logprob

    return {"logprob": _logprob, "logcdf": _logcdf, "icdf": _icdf, "support_point": _support_point}
