"""nutpie's compiled models, kept per model *structure* and fed the current data on every call.

``nutpie.compile_pymc_model`` bakes everything into numba code except the values of shared
variables (``pm.Data``), which a compiled model swaps with ``with_data``. So one compiled model
serves every call whose structure matches: a new seed, ``pm.set_data`` with same-shaped values,
the same model rebuilt from new ``pm.Data`` arrays, or a model cloudpickled to a Dask worker
(a new object each time). Plain NumPy arrays are graph constants: new values are a new structure.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pymc as pm
from pytensor.compile import SharedVariable

from cloudcache.backends.kernel_cache import KernelCache
from cloudcache.backends.nutpie_plan import NutpiePlan
from cloudcache.fingerprint.canonical import content_digest
from cloudcache.fingerprint.model import model_components

#: The process-wide cache of compiled nutpie models (``COMPILED.compilations`` counts them).
COMPILED = KernelCache()


def shared_values(model: pm.Model) -> dict[str, np.ndarray]:
    """Current values of the model's named shared variables (``pm.Data`` and dim lengths)."""
    found = [*model.data_vars, *model.dim_lengths.values()]
    return {
        var.name: np.asarray(var.get_value(borrow=True))
        for var in found
        if isinstance(var, SharedVariable) and var.name
    }


def structure_key(model: pm.Model, plan: NutpiePlan) -> Hashable:
    """What a compiled nutpie model depends on: graph (constants included), shapes, initvals.

    The graph digest comes from :mod:`cloudcache.fingerprint` (it leaves out shared values,
    never constants); shared data enter by name, shape and dtype only.
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
        content_digest(dict(plan.initvals or {})),
        plan.var_names,
    )


def compiled_model(model: pm.Model, plan: NutpiePlan) -> Any:
    """The compiled nutpie model for ``model``'s structure, holding ``model``'s current data."""
    import nutpie

    def compile_it() -> Any:
        return nutpie.compile_pymc_model(
            model,
            var_names=None if plan.var_names is None else list(plan.var_names),
            initial_points=None if plan.initvals is None else dict(plan.initvals),
        )

    compiled = COMPILED.get_or_compile(structure_key(model, plan), compile_it)
    current = shared_values(model)
    names = {var.name for var in compiled.shared_var_keys}
    return compiled.with_data(**{name: current[name] for name in names if name in current})
