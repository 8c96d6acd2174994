"""pymc-extras' ``fit_pathfinder`` on the cache path (when pymc-extras is installed).

Keyed by the model, every argument that can change the draws (``num_paths``, ``num_draws``,
``num_draws_per_path``, the L-BFGS settings, ``jitter``, ``importance_sampling`` in lower case
as pymc-extras reads it, ``inference_backend`` and ``postprocessing_backend``, ``initvals``,
``pathfinder_kwargs``, ``compile_kwargs`` and the groups asked for), pymc-extras' and SciPy's
versions, and the seed in the form pymc-extras uses it: the integer seeds
``_get_seeds_per_chain`` derives, one per path and one for the importance resampling with the
default ``inference_backend="pymc"`` (three with ``"blackjax"``), so ``1``, ``np.int64(1)`` and an
equal generator are one key.

``concurrent``, ``cores``, ``blas_cores`` and ``mp_ctx`` only decide where the paths run: each path
gets the same seed either way (tests/test_extras_calls.py runs them in series and in a process
pool). Run in parallel, pymc-extras collects the paths in the order they finish, so a fixed seed
gives the same paths but the resampled draws can differ between runs (docs/inference-calls.md);
the cache serves the first result. ``progressbar`` and ``display_summary`` only print.

The result is the InferenceData (a DataTree where pymc-extras returns one) stored as it is, with
the order of its groups (ArviZ would otherwise put its own known groups first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloudcache.calls.inference import InferenceCall, count_label, ordered_result, ordered_tree
from cloudcache.compat.pymc import seeds_per_chain

#: How many seeds ``inference_backend="blackjax"`` derives (pymc: one per path and one more).
BLACKJAX_SEEDS = 3


class PathfinderCall(InferenceCall):
    """Hooks of ``pymc_extras.fit_pathfinder``."""

    name = "fit_pathfinder"
    cosmetic = frozenset({"display_summary", "concurrent", "cores", "blas_cores", "mp_ctx"})
    libraries = ("pymc-extras", "scipy")
    library = "pymc-extras"

    def key_form(self, arguments: dict[str, Any]) -> dict[str, Any]:
        parts = dict(arguments)
        sampling = arguments.get("importance_sampling")
        if isinstance(sampling, str):
            parts["importance_sampling"] = sampling.lower()  # pymc-extras lower-cases it
        seed = arguments.get("random_seed")
        if seed is not None:
            if isinstance(seed, bool | np.bool_):
                raise TypeError("random_seed must not be a bool")
            try:
                if arguments.get("inference_backend") == "blackjax":
                    count = BLACKJAX_SEEDS
                else:
                    count = int(arguments["num_paths"]) + 1
                parts["random_seed"] = ("path-seeds", tuple(seeds_per_chain(seed, count)))
            except (TypeError, ValueError) as error:
                raise TypeError(str(error)) from error
        return parts

    def to_tree(self, result: Any) -> Any:
        return ordered_tree(result)

    def result(self, tree: Any) -> Any:
        return ordered_result(tree)

    def label_of(self, arguments: dict[str, Any]) -> str:
        paths, draws = count_label(arguments["num_paths"]), count_label(arguments["num_draws"])
        return f"pathfinder_paths{paths}_draws{draws}"
