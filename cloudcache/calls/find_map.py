"""``pm.find_MAP`` on the cache path.

Keyed by the model, every argument that can change the optimum (``method``, ``vars`` by name
and order, ``initvals``, ``jitter``, the optimizer's own arguments, ``compute_hessian``, what is
returned) and the seed as the generator PyMC makes of it (it draws the jittered start and
basinhopping's steps). SciPy's version enters the key with PyMC's and PyTensor's.

The dict of arrays find_MAP returns by default is stored as a tree of named arrays
(:func:`cloudcache.calls.inference.point_tree`) and handed back as the same dict: the same
names in the same order, dtypes and shapes. ``return_inferencedata=True`` is stored as PyMC
returns it. ``return_raw=True`` (scipy's ``OptimizeResult`` object) runs uncached.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from cloudcache.calls.inference import (
    InferenceCall,
    generator_seed_key,
    point_tree,
    tree_points,
    uncacheable_unless,
    variable_names,
)
from cloudcache.compat.pymc import as_pymc_result

#: The tree attribute that marks a stored dict of arrays.
POINT_MARK = "cloudcache_point"


class FindMapCall(InferenceCall):
    """Hooks of ``pm.find_MAP``."""

    name = "find_MAP"
    libraries = ("scipy",)

    def check(self, arguments: dict[str, Any]) -> None:
        uncacheable_unless(
            not arguments.get("return_raw"),
            "`return_raw=True` returns scipy's OptimizeResult object, which the cache does not "
            "store",
        )

    def key_form(self, arguments: dict[str, Any]) -> dict[str, Any]:
        parts = dict(arguments)
        parts["vars"] = variable_names(arguments.get("vars"))
        if "jitter" in parts and parts["jitter"] is None:
            parts["jitter"] = False  # PyMC 6: None jitters nothing (a FutureWarning says so)
        for seed_name in ("random_seed", "seed"):
            if seed_name in parts:
                parts[seed_name] = generator_seed_key(parts[seed_name])
        return parts

    def label_of(self, arguments: dict[str, Any]) -> str:
        method = arguments.get("method")
        return f"map_{method}" if isinstance(method, str) else "map_custom"

    def to_tree(self, result: Any) -> Any:
        if isinstance(result, dict):
            try:
                return point_tree(result, **{POINT_MARK: 1})
            except (TypeError, ValueError):
                return result  # not arrays: returned as it is, not stored
        return result

    def result(self, tree: Any) -> Any:
        if isinstance(tree, xr.DataTree) and tree.attrs.get(POINT_MARK) is not None:
            return tree_points(tree)
        return as_pymc_result(tree)
