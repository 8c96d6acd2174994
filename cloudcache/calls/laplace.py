"""pymc-extras' ``fit_laplace`` on the cache path (when pymc-extras is installed).

Keyed by the model, every argument that can change the fit or its draws (``optimize_method`` as
given: pymc-extras looks it up by its exact spelling, ``use_grad``/``use_hessp``/``use_hess``,
``initvals``, ``jitter_rvs`` by name, ``include_transformed``, ``freeze_model`` (it changes the
last bits), ``gradient_backend``, ``chains``, ``draws``, ``vectorize_draws``,
``optimizer_kwargs``, ``compile_kwargs``), pymc-extras' and SciPy's versions, and the seed.
``progressbar`` only prints.

The seed reseeds both the jittered start and the draws from the approximation (NumPy's
``SeedSequence``): an integer is keyed as that integer (``1`` and ``np.int64(1)`` are one key), a
sequence of integers as that sequence, a ``Generator`` (which ``SeedSequence`` refuses, so
pymc-extras 0.10 and 0.12 raise) by its state. ``jitter_rvs`` is read as a set of variables,
``None`` as none (pymc-extras jitters nothing then): it is keyed as the sorted names. 0.10
(PyMC 5) and 0.12 (PyMC 6.4) take the same arguments and seed the same way; 0.12 returns a
DataTree.

The result is the InferenceData (a DataTree where pymc-extras returns one) stored as it is, with
the order of its groups (ArviZ would otherwise put its own known groups first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloudcache.calls.inference import (
    OrderedGroupsCall,
    count_label,
    generator_seed_key,
    variable_names,
)


class LaplaceCall(OrderedGroupsCall):
    """Hooks of ``pymc_extras.fit_laplace``."""

    name = "fit_laplace"
    libraries = ("pymc-extras", "scipy")
    library = "pymc-extras"

    def key_form(self, arguments: dict[str, Any]) -> dict[str, Any]:
        parts = dict(arguments)
        jittered = variable_names(arguments.get("jitter_rvs")) or ()
        if isinstance(jittered, tuple):
            parts["jitter_rvs"] = tuple(sorted(set(map(str, jittered))))
        parts["random_seed"] = seed_sequence_key(arguments.get("random_seed"))
        return parts

    def label_of(self, arguments: dict[str, Any]) -> str:
        method = arguments.get("optimize_method")
        method = method if isinstance(method, str) else "custom"
        return f"laplace_{method}_draws{count_label(arguments.get('draws'))}"


def seed_sequence_key(random_seed: Any) -> Any:
    """Key form of a seed NumPy's ``SeedSequence`` takes (pymc-extras' Laplace fit).

    ``None`` stays "unseeded"; a seed that cannot be one raises ``TypeError`` (pymc-extras then
    reports it in its own words).
    """
    if random_seed is None:
        return None
    if isinstance(random_seed, bool | np.bool_):
        raise TypeError("random_seed must not be a bool")
    if isinstance(random_seed, np.random.Generator):
        return generator_seed_key(random_seed)
    if isinstance(random_seed, int | np.integer):
        seeds: tuple[int, ...] | int = int(random_seed)
    elif isinstance(random_seed, list | tuple | np.ndarray):
        values = np.asarray(random_seed)
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise TypeError("random_seed must be an int or a sequence of ints")
        seeds = tuple(int(value) for value in values)
    else:
        raise TypeError(f"random_seed cannot be a {type(random_seed).__name__}")
    try:
        np.random.SeedSequence(seeds)
    except (TypeError, ValueError) as error:
        raise TypeError(f"random_seed cannot seed a SeedSequence: {error}") from error
    return ("seed-sequence", seeds)
