"""``pm.fit`` (ADVI, full-rank ADVI, SVGD, ASVGD) on the cache path.

Keyed by the model, ``n``, the method (case as PyMC ignores it), ``start``, ``start_sigma``,
``inf_kwargs``, every other argument PyMC passes on (optimizers, callbacks, ``obj_n_mc``, ...)
by content, and the seed as the ``numpy.random.RandomState`` PyMC seeds with it (``1`` and
``np.int64(1)`` are one key; PyMC refuses a ``Generator`` here). A prepared ``Inference`` object as
``method=`` carries state the cache cannot see: it runs uncached.

The returned ``Approximation`` is stored as plain arrays: its class, its parameters by name
(``mu``/``rho``, ``mu``/``L_tril`` or the SVGD ``histogram``) and its loss history. The caller
gets an approximation rebuilt against the model with those parameters (on a miss too, so a miss
and a hit behave the same): ``.mean``, ``.std``, ``.sample()``, ``.hist`` and ``sample_node``
work as on the original. No pickle is involved.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from cloudcache.calls.inference import (
    InferenceCall,
    point_tree,
    tree_points,
    uncacheable_unless,
)
from cloudcache.fingerprint.canonical import content_digest

#: ``method=`` names pm.fit accepts, lower case (PyMC lower-cases what it is given).
METHODS: tuple[str, ...] = ("advi", "fullrank_advi", "svgd", "asvgd")

#: The approximation classes that come back from stored parameters.
APPROXIMATIONS: tuple[str, ...] = ("MeanField", "FullRank", "Empirical")


class FitCall(InferenceCall):
    """Hooks of ``pm.fit``."""

    name = "fit"

    def check(self, arguments: dict[str, Any]) -> None:
        method = arguments.get("method")
        uncacheable_unless(
            isinstance(method, str) and method.lower() in METHODS,
            f"`method=` must be one of {', '.join(map(repr, METHODS))} to be cached (a prepared "
            "Inference object carries state the cache cannot fingerprint)",
        )

    def key_form(self, arguments: dict[str, Any]) -> dict[str, Any]:
        parts = dict(arguments)
        parts["method"] = str(arguments["method"]).lower()
        parts["n"] = int(arguments["n"])
        parts["random_seed"] = random_state_seed_key(arguments.get("random_seed"))
        return parts

    def label_of(self, arguments: dict[str, Any]) -> str:
        return f"fit_{str(arguments['method']).lower()}_n{int(arguments['n'])}"

    def to_tree(self, result: Any) -> Any:
        kind = type(result).__name__
        if kind not in APPROXIMATIONS or len(getattr(result, "groups", ())) != 1:
            return result  # another approximation: returned as it is, not stored
        params = {param.name: param.get_value() for param in result.params}
        group = result.groups[0]
        tree = xr.DataTree.from_dict(
            {
                "/params": point_tree(params).to_dataset(),
                "/hist": xr.Dataset({"loss": ("iteration", np.asarray(result.hist, float))}),
            }
        )
        tree.attrs = {
            "approximation": kind,
            "include_transformed": int(bool(getattr(group, "include_transformed", False))),
        }
        return tree

    def result(self, tree: Any) -> Any:
        if not isinstance(tree, xr.DataTree) or tree.attrs.get("approximation") is None:
            return tree
        params = tree_points(tree["params"])
        kind = str(tree.attrs["approximation"])
        if kind not in APPROXIMATIONS:
            raise ValueError(f"a stored approximation of unknown class {kind!r}")
        if kind == "Empirical":
            approximation = pm.Empirical(size=params["histogram"].shape[0], model=self.model)
        else:
            approximation = getattr(pm, kind)(model=self.model)
        for param in approximation.params:
            param.set_value(params[param.name].astype(param.dtype, copy=False))
        approximation.hist = np.array(tree["hist"]["loss"].values)
        approximation.groups[0].include_transformed = bool(tree.attrs["include_transformed"])
        return approximation


def random_state_seed_key(random_seed: Any) -> Any:
    """Key form of ``pm.fit``'s seed: the state of ``numpy.random.RandomState(random_seed)``.

    The approximation draws every seed it uses from that state. ``None`` stays "unseeded"; a
    seed ``RandomState`` refuses raises ``TypeError`` (PyMC then reports it).
    """
    if random_seed is None:
        return None
    if isinstance(random_seed, bool | np.bool_):
        raise TypeError("random_seed must be an int or None")
    try:
        state = np.random.RandomState(copy.deepcopy(random_seed)).get_state()
    except (TypeError, ValueError) as error:
        raise TypeError(f"random_seed cannot seed a RandomState: {error}") from error
    return ("random-state", content_digest(tuple(state)))
