"""``pm.sample_smc`` on the cache path.

Keyed like ``pm.sample``: the model, every argument that can change the draws (``draws``, the
kernel and its arguments, ``start``, ``chains`` resolved as PyMC resolves it, ``idata_kwargs``,
the compile mode) and the seed in the form PyMC uses it: one integer per chain
(``_get_seeds_per_chain``), so ``1``, ``np.int64(1)`` and an equal generator are one key.
``cores``, ``blas_cores`` and ``mp_ctx`` only decide where chains run (the same per-chain
generators either way: tests/test_inference_calls.py samples both), and the convergence checks
only warn.

SMC's ``sample_stats`` hold one value per stage and chain in object arrays (ragged when chains
took different numbers of stages), which NetCDF cannot hold: they are stored as float arrays
(padded with NaN, the lengths kept in attributes) and turned back into the same object arrays
before the caller gets the result.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from cloudcache.calls.inference import InferenceCall, uncacheable_unless
from cloudcache.compat.pymc import as_pymc_result, as_tree, default_cores, seeds_per_chain

#: The attribute marking a stored object array: "square" or the JSON list of stage counts.
OBJECT_MARK = "cloudcache_object_array"


class SmcCall(InferenceCall):
    """Hooks of ``pm.sample_smc``."""

    name = "sample_smc"
    cosmetic = frozenset({"cores", "blas_cores", "mp_ctx", "compute_convergence_checks"})

    def check(self, arguments: dict[str, Any]) -> None:
        uncacheable_unless(
            arguments.get("return_inferencedata") is not False,
            "`return_inferencedata=False` returns a MultiTrace, which the cache does not store",
        )

    def key_form(self, arguments: dict[str, Any]) -> dict[str, Any]:
        chains = arguments.get("chains")
        if chains is None:
            chains = max(2, default_cores())
        parts = {**arguments, "chains": int(chains), "draws": int(arguments["draws"])}
        seed = arguments.get("random_seed")
        if seed is not None:
            if isinstance(seed, bool | np.bool_):
                raise TypeError("random_seed must not be a bool")
            try:
                parts["random_seed"] = ("chain-seeds", tuple(seeds_per_chain(seed, int(chains))))
            except (TypeError, ValueError) as error:
                raise TypeError(str(error)) from error
        return parts

    def label_of(self, arguments: dict[str, Any]) -> str:
        chains = arguments.get("chains") or max(2, default_cores())
        return f"smc_draws{int(arguments['draws'])}_chains{int(chains)}"

    def to_tree(self, result: Any) -> Any:
        tree = as_tree(result)
        if not isinstance(tree, xr.DataTree) or "sample_stats" not in tree.children:
            return tree
        stats = tree["sample_stats"].to_dataset(inherit=False)
        stored = {name: _as_floats(stats[name]) for name in stats.data_vars}
        tree = tree.copy(deep=False)
        tree["sample_stats"] = xr.DataTree(stats.drop_vars(list(stored)).assign(stored))
        return tree

    def result(self, tree: Any) -> Any:
        if isinstance(tree, xr.DataTree) and "sample_stats" in tree.children:
            stats = tree["sample_stats"].to_dataset(inherit=False)
            marked = [name for name in stats.data_vars if OBJECT_MARK in stats[name].attrs]
            if marked:
                restored = {name: _as_objects(stats[name]) for name in marked}
                stats = stats.drop_vars(marked).assign(restored)
                tree = tree.copy(deep=False)
                tree["sample_stats"] = xr.DataTree(stats)
        return as_pymc_result(tree)


def _as_floats(array: xr.DataArray) -> xr.DataArray:
    """An object array of stage values as floats (ragged rows padded with NaN, marked)."""
    if array.dtype != object:
        return array
    values = array.values
    try:
        square = np.asarray(values.tolist(), dtype=float)
    except (TypeError, ValueError):
        square = None
    if square is not None and square.shape == values.shape:
        return xr.DataArray(
            square,
            dims=array.dims,
            coords=array.coords,
            attrs={**array.attrs, OBJECT_MARK: "square"},
        )
    rows = [np.asarray(row, dtype=float).ravel() for row in values.ravel()]
    width = max((len(row) for row in rows), default=0)
    padded = np.full((len(rows), width), np.nan)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    padded = padded.reshape((*values.shape, width))
    return xr.DataArray(
        padded,
        dims=(*array.dims, f"{array.name}_stage"),
        coords={name: coord for name, coord in array.coords.items()},
        attrs={**array.attrs, OBJECT_MARK: json.dumps([len(row) for row in rows])},
    )


def _as_objects(array: xr.DataArray) -> xr.DataArray:
    """Undo :func:`_as_floats`: the object array PyMC built."""
    mark = array.attrs[OBJECT_MARK]
    attrs = {name: value for name, value in array.attrs.items() if name != OBJECT_MARK}
    if mark == "square":
        values = np.empty(array.shape, dtype=object)
        for index in np.ndindex(array.shape):
            values[index] = float(array.values[index])
        return xr.DataArray(values, dims=array.dims, coords=array.coords, attrs=attrs)
    lengths = json.loads(mark)
    flat = array.values.reshape((-1, array.shape[-1]))
    rows = np.empty(len(lengths), dtype=object)
    for index, length in enumerate(lengths):
        rows[index] = [float(value) for value in flat[index, :length]]
    dims = array.dims[:-1]
    coords = {name: coord for name, coord in array.coords.items() if set(coord.dims) <= set(dims)}
    return xr.DataArray(rows.reshape(array.shape[:-1]), dims=dims, coords=coords, attrs=attrs)
