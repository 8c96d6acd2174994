"""The identity of a posterior predictive's trace: a digest of exactly what PyMC reads from it.

``pm.sample_posterior_predictive`` reads, from whatever trace it is given (a tree, its
``posterior`` node or Dataset, a tree re-opened from its ``.nc`` file or extended in place):

- the posterior variables the model can take from a trace (its free random variables and
  deterministics, by name), and the posterior's coordinates (the output's sample coordinates);
- the names in ``observed_data``, which widen the default outputs (keyed through the request's
  ``var_names``, see :mod:`cloudcache.calls.predictive`);
- ``constant_data``, only to decide whether a trace variable downstream of data that changed
  since sampling is recomputed. On PyMC 6 that can only be a deterministic (every random
  variable of the trace is kept), recomputed from the very draws and data it was computed from,
  so ``constant_data`` is left out. On PyMC 5 a random variable downstream of changed data is
  resampled: there, when a traced random variable depends on data, ``constant_data`` is hashed.

The digest is of content (names, dims, dtypes, shapes and every byte, via XXH3-128), so equal
traces share a key in any process and an edited one gets its own: there is no identity to go
stale. It runs at memory speed (see ``benchmarks/bench_trace_identity.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import xarray as xr
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.type import RandomType

from cloudcache.compat.pymc import TRACE_RVS_FOLLOW_DATA, TRACE_TREE_NAME, is_pymc_result
from cloudcache.errors import Uncacheable, UnkeyableObject
from cloudcache.fingerprint.canonical import content_digest
from cloudcache.fingerprint.digest import Digest


def trace_identity(trace: Any, model: pm.Model) -> tuple[str, str]:
    """``(identity, 8-character label)`` of a posterior predictive's ``trace`` argument.

    Raises :class:`Uncacheable` for a trace type the cache does not key and ``TypeError`` for
    one this PyMC does not read.
    """
    if isinstance(trace, list) and all(isinstance(point, dict) for point in trace):
        try:
            identity = content_digest(("points", trace))
        except UnkeyableObject as error:
            raise Uncacheable(f"the trace holds {error}") from error
        return identity, identity[:8]
    posterior, constant_data = read_groups(trace)
    digest = Digest()
    digest.token("trace", "posterior")
    traced = traced_names(posterior, model)
    for name in traced:
        variable = posterior.variables[name]
        digest.token("var", name)
        digest.token("dims", ",".join(map(str, variable.dims)))
        digest.values(np.asarray(variable.values))
    for name in sorted(map(str, posterior.coords)):
        coordinate = posterior.coords[name].variable
        digest.token("coord", name)
        digest.token("dims", ",".join(map(str, coordinate.dims)))
        digest.values(np.asarray(coordinate.values))
    if TRACE_RVS_FOLLOW_DATA and traced_rvs_read_data(model, traced):
        digest.token("constant_data", "present" if constant_data is not None else "absent")
        if constant_data is not None:
            for name in sorted(map(str, constant_data.variables)):
                digest.token("var", name)
                digest.values(np.asarray(constant_data.variables[name].values))
    identity = digest.hexdigest()
    return identity, identity[:8]


def read_groups(trace: Any) -> tuple[xr.Dataset, xr.Dataset | None]:
    """``(posterior, constant_data)`` as ``sample_posterior_predictive`` finds them in ``trace``."""
    if is_pymc_result(trace):
        if isinstance(trace, xr.DataTree):
            posterior = trace["posterior"] if "posterior" in trace.children else trace
            constant = trace.children.get("constant_data")
            return posterior.to_dataset(inherit=True), (
                None if constant is None else constant.to_dataset(inherit=True)
            )
        return trace["posterior"], getattr(trace, "constant_data", None)  # InferenceData
    if isinstance(trace, xr.DataTree):
        raise TypeError(f"this PyMC reads a trace from an {TRACE_TREE_NAME}, not a DataTree")
    if isinstance(trace, xr.Dataset):
        return trace, None
    raise Uncacheable(
        f"a trace of type {type(trace).__name__} is not cached "
        f"(pass the {TRACE_TREE_NAME} from pm.sample)"
    )


def traced_names(posterior: xr.Dataset, model: pm.Model) -> list[str]:
    """Names of ``posterior``'s variables PyMC can take from a trace: free RVs, deterministics."""
    traceable = {variable.name for variable in (*model.free_RVs, *model.deterministics)}
    return sorted(name for name in map(str, posterior.data_vars) if name in traceable)


def traced_rvs_read_data(model: pm.Model, traced: list[str]) -> bool:
    """Whether a free random variable among ``traced`` depends on a shared (data) variable.

    Random generators are shared variables too, but never data.
    """
    free = set(model.free_RVs)
    rvs = [model[name] for name in traced if model[name] in free]
    return any(
        isinstance(node, SharedVariable) and not isinstance(node.type, RandomType)
        for node in ancestors(rvs)
    )
