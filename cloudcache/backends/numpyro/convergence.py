"""PyMC's convergence checks of a finished NumPyro run, over parts of the posterior at once.

PyMC's checks (r-hat and ESS of every free variable: three rank sorts of every value's draws)
take seconds on long runs: radon with 4 x 30,000 draws spends 5-7 s in them, on one core. The
statistics of a value depend on its own draws alone, so a large posterior is cut into parts
(the dimension holding most checked values is split, the other variables are shared out) and
PyMC's own ``run_convergence_checks`` runs on each part in a thread of its own (NumPy's sorts
release the GIL). The parts' warnings are merged into the list one call over the whole
posterior gives (the same messages in the same order) and logged as ``pm.sample`` logs them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import xarray as xr

from cloudcache.backends.numpyro.devices import available_cores
from cloudcache.compat.pymc import as_pymc_result

if TYPE_CHECKING:
    import pymc as pm

#: Below this many checked draws (draws x chains x values) the checks run whole, in the caller.
#: Two threads on two cores: radon 4 x 4,000 draws (1.4 M) 0.66 -> 0.40 s, 4 x 2,000 (0.7 M)
#: 0.36 -> 0.26 s, 4 x 1,000 (0.35 M) no faster.
PARALLEL_FROM = 500_000

#: At most this many parts (threads).
MAX_PARTS = 4

_SAMPLE_DIMS = ("chain", "draw")


def convergence_warnings(tree: xr.DataTree, model: pm.Model, *, quiet: bool) -> None:
    """PyMC's divergence, tree-depth, r-hat and ESS checks of ``tree``, logged as ``pm.sample``
    logs them (nothing logged when ``quiet``)."""
    from pymc.stats.convergence import log_warnings, run_convergence_checks

    def check(part: xr.DataTree) -> list[Any]:
        return run_convergence_checks(as_pymc_result(part), model)

    parts = posterior_parts(tree, model, _workers())
    # The filters are put back as they were whatever the threads did meanwhile (ArviZ's own
    # ``catch_warnings`` blocks are not thread-safe: they only add "ignore" filters for a time).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(parts) == 1:
            found = check(parts[0])
        else:
            with ThreadPoolExecutor(len(parts), thread_name_prefix="cloudcache-checks") as pool:
                found = merged_warnings(list(pool.map(check, parts)))
    if not quiet:
        log_warnings(found)


def posterior_parts(
    tree: xr.DataTree, model: pm.Model, count: int, *, minimum: int = PARALLEL_FROM
) -> list[xr.DataTree]:
    """``tree`` cut into at most ``count`` trees whose posteriors hold every checked value
    once between them (each with the whole ``sample_stats``); ``[tree]`` when the checks
    cover fewer than ``minimum`` draws (draws x chains x values)."""
    if count < 2 or "posterior" not in tree.children:
        return [tree]
    posterior = tree["posterior"].to_dataset(inherit=False)
    free = _checked_names(model)
    weights = {
        name: math.prod(
            size for dim, size in posterior[name].sizes.items() if dim not in _SAMPLE_DIMS
        )
        for name in posterior.data_vars
        if name in free and all(dim in posterior[name].dims for dim in _SAMPLE_DIMS)
    }
    if not weights:
        return [tree]
    draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    if draws * sum(weights.values()) < minimum:
        return [tree]
    split_dim = _split_dimension(posterior, weights, count)
    parts: list[list[xr.Dataset]] = [[] for _ in range(count)]
    loads = [0.0] * count
    if split_dim is not None:
        along = [name for name in weights if split_dim in posterior[name].dims]
        size = posterior.sizes[split_dim]
        bounds = [round(size * i / count) for i in range(count + 1)]
        for i in range(count):
            parts[i].append(posterior[along].isel({split_dim: slice(bounds[i], bounds[i + 1])}))
            loads[i] = sum(weights[name] for name in along) * (bounds[i + 1] - bounds[i]) / size
        rest = [name for name in weights if name not in along]
    else:
        rest = list(weights)
    for name in sorted(rest, key=lambda name: -weights[name]):  # largest first, to the lightest
        lightest = loads.index(min(loads))
        parts[lightest].append(posterior[[name]])
        loads[lightest] += weights[name]
    stats = (
        {"sample_stats": tree["sample_stats"].to_dataset(inherit=False)}
        if "sample_stats" in tree.children
        else {}
    )
    trees = [
        xr.DataTree.from_dict(
            {"posterior": xr.merge(pieces, join="exact", compat="override"), **stats}
        )
        for pieces in parts
        if pieces
    ]
    return trees if len(trees) > 1 else [tree]


def _checked_names(model: pm.Model) -> set[str]:
    """The posterior variables PyMC's checks may look at: the free variables' names and, for a
    free variable named like a transformed one, the name PyMC maps it to."""
    from pymc.util import get_untransformed_name, is_transformed_name

    names = set()
    for rv in model.free_RVs:
        names.add(rv.name)
        if is_transformed_name(rv.name):
            names.add(get_untransformed_name(rv.name))
    return names


def _split_dimension(posterior: xr.Dataset, weights: dict[str, int], count: int) -> str | None:
    """The dimension (at least ``count`` long) shared by the checked variables holding most
    values, or None."""
    held: dict[str, int] = {}
    for name, weight in weights.items():
        for dim in posterior[name].dims:
            if dim not in _SAMPLE_DIMS and posterior.sizes[dim] >= count:
                held[dim] = held.get(dim, 0) + weight
    if not held:
        return None
    return max(held, key=lambda dim: held[dim])


def merged_warnings(lists: Sequence[Sequence[Any]]) -> list[Any]:
    """The warnings of the parts as one list, each message once, in the order one call over
    the whole posterior gives them (every part's list follows that order)."""

    def key(warning: Any) -> tuple[Any, ...]:
        return (warning.kind, warning.message, warning.level)

    pending = [list(found) for found in lists]
    merged: list[Any] = []
    while any(pending):
        # the next warning: one at the head of a list that no list holds further down
        later = {key(w) for found in pending for w in found[1:]}
        heads = [found[0] for found in pending if found]
        head = next((w for w in heads if key(w) not in later), heads[0])
        merged.append(head)
        for found in pending:
            if found and key(found[0]) == key(head):
                found.pop(0)
    return merged


def _workers() -> int:
    """The threads the checks may use: the available cores, at most :data:`MAX_PARTS`."""
    return min(available_cores(), MAX_PARTS)
