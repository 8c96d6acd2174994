"""nutpie's compiled models, kept per model *structure* and fed the current data on every call.

``nutpie.compile_pymc_model`` bakes everything into numba code except the values of shared
variables (``pm.Data``), which a compiled model swaps with ``with_data``. Before compiling,
every floating-point constant array of at least ``LIFT_CONSTANT_SIZE`` elements (an observed
NumPy array, a covariate) is lifted into a shared variable too, so one compiled model serves
every call whose structure matches: a new seed, ``pm.set_data`` with same-shaped values, the
same model rebuilt from new float arrays of the same shapes, or a model cloudpickled to a Dask
worker (a new object each time). Integer arrays (index vectors such as ``a[group]``) stay
constants: PyTensor compiles gathers over a constant index into much faster code (lifting the
1e5 model's group index made its sampling ~1.6x slower), so a new index is a new structure.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Hashable
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pymc.model.fgraph import fgraph_from_model, model_from_fgraph
from pytensor.compile import SharedVariable
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor import TensorType

from cloudcache.backends.choose import nutpie_persists
from cloudcache.backends.kernel_cache import LIFT_CONSTANT_SIZE, KernelCache
from cloudcache.backends.nutpie.plan import NutpiePlan
from cloudcache.compat.nutpie import data_names
from cloudcache.compat.nutpie_disk_cache import compile_disk_cached
from cloudcache.fingerprint.canonical import content_digest
from cloudcache.fingerprint.model import model_components

_log = logging.getLogger("cloudcache")

#: The process-wide cache of compiled nutpie models (``COMPILED.compilations`` counts them).
COMPILED = KernelCache()


def shared_variables(model: pm.Model) -> list[SharedVariable]:
    """The named tensor shared variables the model's graphs read, each once, in graph order."""
    roots = [
        *model.free_RVs,
        *model.observed_RVs,
        *model.deterministics,
        *model.potentials,
        *(model.rvs_to_values[rv] for rv in model.observed_RVs),
    ]
    found: list[SharedVariable] = []
    for var in [*model.data_vars, *model.dim_lengths.values(), *graph_inputs(roots)]:
        if (
            isinstance(var, SharedVariable)
            and isinstance(var.type, TensorType)
            and var.name
            and all(var is not seen for seen in found)
        ):
            found.append(var)
    return found


def shared_values(model: pm.Model) -> dict[str, np.ndarray]:
    """Current values of the shared variables a compiled model is fed by name (``with_data``):
    those whose name no other shared variable of the model carries."""
    variables = shared_variables(model)
    counts = Counter(var.name for var in variables)
    return {
        var.name: np.asarray(var.get_value(borrow=True))
        for var in variables
        if counts[var.name] == 1
    }


def ambiguous_values(model: pm.Model) -> list[np.ndarray]:
    """Values of the shared variables whose name several carry, in graph order: nutpie cannot
    feed them by name, so the compiled model keeps them and its key holds them by content."""
    variables = shared_variables(model)
    counts = Counter(var.name for var in variables)
    return [np.asarray(var.get_value(borrow=True)) for var in variables if counts[var.name] > 1]


def _reads_values(op: object) -> bool:
    """Whether a distribution's log density reads its parameters' values when it is built (they
    must stay constants): ``pm.Interpolated``'s spline."""
    from pymc.distributions.continuous import InterpolatedRV

    return isinstance(op, InterpolatedRV)


def lifted_model(model: pm.Model) -> pm.Model:
    """A copy of ``model`` whose large float constants are shared variables.

    The lifted arrays are named ``cloudcache_data_<n>`` in graph order (``pm.Interpolated``'s
    points, read by value when its log density is built, stay constants), so the same model
    built from other arrays of the same shapes lifts to the same structure. The copy has its
    own transforms: compiling with nutpie rewrites the graphs a transform holds (for example
    ``CholeskyCovPacked``'s indices) in place, which must not change the user's model (its
    key would change after every nutpie run).
    """
    try:
        fgraph, _ = fgraph_from_model(model, inlined_views=True)
    except Exception:  # a model PyMC cannot round-trip: compile it as it is
        return model
    nodes = fgraph.toposort()
    # pm.Interpolated builds its log density from its points' values (``x_points.data``)
    read_by_value = [var for node in nodes if _reads_values(node.op) for var in node.inputs]
    constants: list[Constant] = []
    for node in nodes:
        for var in node.inputs:
            if (
                isinstance(var, Constant)
                and isinstance(var.data, np.ndarray)
                and var.data.dtype.kind == "f"  # index arrays stay constants: faster code
                and var.data.size >= LIFT_CONSTANT_SIZE
                and all(var is not seen for seen in constants)
                and all(var is not kept for kept in read_by_value)
            ):
                constants.append(var)
    replacements = [
        (const, pytensor.shared(const.data, name=f"cloudcache_data_{n}", shape=const.data.shape))
        for n, const in enumerate(constants)
    ]
    if replacements:
        fgraph.replace_all(replacements, import_missing=True)
    lifted = model_from_fgraph(fgraph, mutate_fgraph=True)
    lifted.rvs_to_transforms = {
        rv: copy.deepcopy(transform) for rv, transform in lifted.rvs_to_transforms.items()
    }
    return lifted


def structure_key(model: pm.Model, plan: NutpiePlan) -> Hashable:
    """What a compiled nutpie model depends on: graph, small constants, shapes, initvals.

    The graph digest comes from :mod:`cloudcache.fingerprint` (it leaves out shared values,
    never constants: call it on the :func:`lifted_model`); shared data enter by name, shape and
    dtype only, except those of a name several shared variables carry (by content: the compiled
    model keeps their values, ``with_data`` cannot tell them apart).
    """
    components = model_components(model)
    shapes = tuple(
        (name, value.shape, value.dtype.str) for name, value in sorted(shared_values(model).items())
    )
    return (
        components["graph"],
        components["coords"],
        components["settings"],
        shapes,
        content_digest(ambiguous_values(model)),
        content_digest(dict(plan.initvals or {})),
        plan.var_names,
    )


def compiled_model(model: pm.Model, plan: NutpiePlan) -> Any:
    """The compiled nutpie model for ``model``'s structure, holding ``model``'s current data."""
    import nutpie

    model = lifted_model(model)

    var_names = None if plan.var_names is None else list(plan.var_names)
    initial_points = None if plan.initvals is None else dict(plan.initvals)

    def compile_it() -> Any:
        if nutpie_persists():  # the callbacks come from numba's disk cache in a later process
            try:
                return compile_disk_cached(
                    model, var_names=var_names, initial_points=initial_points
                )
            except Exception as error:  # anything: nutpie's own compilation gives the same
                _log.debug("cloudcache: nutpie compiles %s itself (%r)", model.name, error)
        return nutpie.compile_pymc_model(model, var_names=var_names, initial_points=initial_points)

    compiled = COMPILED.get_or_compile(structure_key(model, plan), compile_it)
    current = shared_values(model)
    names = data_names(compiled)
    return compiled.with_data(**{name: current[name] for name in names if name in current})
