"""pymc-extras' ``fit_pathfinder`` on the cache path (when pymc-extras is installed).

Keyed by the model, every argument that can change the draws, pymc-extras' and SciPy's versions,
and the seed in the form pymc-extras uses it: the integer seeds ``_get_seeds_per_chain``
derives, one per path and one for the importance resampling (three with 0.10's
``inference_backend="blackjax"``), so ``1``, ``np.int64(1)`` and an equal generator are one key.
``importance_sampling`` is keyed in lower case, as pymc-extras reads it. The releases name the
other arguments differently, and each is keyed as the installed one takes it:

* 0.10 (PyMC 5; 0.11 spells them alike): ``num_paths``, ``num_draws``,
  ``num_draws_per_path``, the L-BFGS settings as arguments, ``jitter``, ``inference_backend``,
  ``postprocessing_backend``, ``initvals``, ``pathfinder_kwargs``, ``compile_kwargs``, the groups
  asked for. ``concurrent`` only decides where paths run; run in parallel, the paths are
  collected in the order they finish, so a fixed seed gives the same paths but the resampled
  draws can differ between runs (docs/inference-calls.md): the cache serves the first result.
  ``display_summary`` only prints.
* 0.12 (PyMC 6.4): the L-BFGS settings as one ``LBFGSConfig``, keyed as its settings by name
  (``None`` as the defaults, :func:`~cloudcache.compat.pymc_extras.lbfgs_settings`);
  ``jacobian_correction``, ``vectorize_logp``, ``vectorize_postprocessing`` as given (the last
  changes the last bits of the deterministics).
  ``parallel`` only decides where paths run: pymc-extras puts them back in path order, so
  serial and parallel runs give the same result.

``cores``, ``blas_cores`` and ``mp_ctx`` only decide where the paths run: each path gets the
same seed either way (tests/test_extras_calls.py runs them in series and in a process pool).
``progressbar`` only prints.

The result is the InferenceData or DataTree stored as it is, with the order of its groups (ArviZ
would otherwise put its own known groups first).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloudcache.calls.inference import OrderedGroupsCall, count_label
from cloudcache.compat.pymc import seeds_per_chain
from cloudcache.compat.pymc_extras import lbfgs_settings

#: How many seeds 0.10's ``inference_backend="blackjax"`` derives (pymc: one per path and one
#: more; 0.12 has no ``inference_backend``).
BLACKJAX_SEEDS = 3


class PathfinderCall(OrderedGroupsCall):
    """Hooks of ``pymc_extras.fit_pathfinder``."""

    name = "fit_pathfinder"
    cosmetic = frozenset(
        {"display_summary", "concurrent", "parallel", "cores", "blas_cores", "mp_ctx"}
    )
    libraries = ("pymc-extras", "scipy")
    library = "pymc-extras"

    def key_form(self, arguments: dict[str, Any]) -> dict[str, Any]:
        parts = dict(arguments)
        sampling = arguments.get("importance_sampling")
        if isinstance(sampling, str):
            parts["importance_sampling"] = sampling.lower()  # pymc-extras lower-cases it
        if "lbfgs_config" in arguments:  # 0.12 and later: one LBFGSConfig, None its defaults
            parts["lbfgs_config"] = ("lbfgs-settings", lbfgs_settings(arguments["lbfgs_config"]))
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

    def label_of(self, arguments: dict[str, Any]) -> str:
        paths, draws = count_label(arguments["num_paths"]), count_label(arguments["num_draws"])
        return f"pathfinder_paths{paths}_draws{draws}"
