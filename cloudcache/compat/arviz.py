"""A sampler's raw draws -> the DataTree the installed PyMC's own JAX path would return.

PyMC 6 (ArviZ 1.x) builds it with ``arviz_base.from_dict``: ``sampling_time``/``tuning_steps``
on the ``posterior`` and ``sample_stats`` groups, an empty ``observed_data`` group when the
model observes nothing. PyMC 5 (ArviZ 0.x) builds an ``InferenceData`` with ``az.from_dict``:
those attributes on the result and on every group but ``sample_stats``, no ``observed_data``
group without observations. Both are returned as a DataTree (:func:`as_tree`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import xarray as xr

from cloudcache.compat.pymc import RETURNS_INFERENCEDATA, as_tree
from cloudcache.compat.xarray import dask_modules_imported_by_xarray
from cloudcache.util.versions import installed_version


def sampler_tree(
    groups: Mapping[str, Mapping[str, Any]],
    *,
    coords: Mapping[str, Any],
    dims: Mapping[str, Any],
    run_attrs: Mapping[str, Any],
    library: str,
    from_dict_kwargs: Mapping[str, Any],
) -> xr.DataTree:
    """``groups`` (group -> variable -> array) as the installed PyMC's sampler result.

    ``run_attrs`` are the run's attributes (``sampling_time``, ...), ``library`` the name of
    the sampling library named in them with its installed version (the library itself is not
    imported: a run from kept programs never imports NumPyro); ``from_dict_kwargs`` (the rest
    of ``idata_kwargs``, ``attrs`` included) reach ``from_dict`` as PyMC passes them.
    """
    kwargs = dict(from_dict_kwargs)
    library_module = _named_library(library)
    if RETURNS_INFERENCEDATA:
        import arviz as az
        from arviz.data.base import make_attrs

        attrs = make_attrs(dict(run_attrs), library=library_module)
        defaults = {"attrs": attrs, "posterior_attrs": dict(attrs)}
        idata = az.from_dict(
            **{name: dict(values) for name, values in groups.items()},
            coords=dict(coords),
            dims=dict(dims),
            **{**defaults, **kwargs},  # PyMC 5: idata_kwargs replace its defaults
        )
        return as_tree(idata)

    from arviz_base import from_dict, make_attrs

    data = {name: dict(values) for name, values in groups.items() if values}
    group_attrs: dict[str, Any] = {
        "posterior": make_attrs(dict(run_attrs), inference_library=library_module),
        "sample_stats": make_attrs(dict(run_attrs), inference_library=library_module),
    }
    group_attrs.update(kwargs.pop("attrs", None) or {})
    tree = from_dict(
        data=data,
        coords=dict(coords),
        dims=dict(dims),
        sample_dims=["chain", "draw"],
        attrs=group_attrs,
        **kwargs,
    )
    if "observed_data" not in tree.children:  # PyMC keeps the group, empty, with no observations
        attrs = make_attrs(inference_library=library_module)
        tree["observed_data"] = xr.DataTree(xr.Dataset(attrs=attrs))
    return tree


def _named_library(name: str) -> ModuleType:
    """A module object carrying only ``name`` and its installed version: what ArviZ's
    ``make_attrs`` reads of an inference library."""
    library = ModuleType(name)
    library.__version__ = installed_version(name)  # type: ignore[attr-defined]
    return library


def building_libraries() -> tuple[str, ...]:
    """The modules a sampler's result is built and written with that ``import pymc`` does not
    import: the ``from_dict`` that builds it and the parts of Dask xarray imports to build and
    write it (when Dask is installed)."""
    own = ("arviz",) if RETURNS_INFERENCEDATA else ("arviz_base",)
    return own + dask_modules_imported_by_xarray()


def checking_libraries() -> tuple[str, ...]:
    """The modules PyMC's convergence checks of a result import (ArviZ's statistics, with
    SciPy's: 0.7 s of a new process)."""
    return ("arviz",) if RETURNS_INFERENCEDATA else ("arviz_stats",)


def import_libraries(names: Sequence[str]) -> None:
    """Import ``names`` in order (in a thread while a sampler runs: 1-2 s of a new process's
    first miss); an error is left for the caller's own import to raise."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the real import, later, says what is wrong
            return


def mean_mcse(posterior: xr.Dataset) -> xr.Dataset:
    """Monte Carlo standard error of each variable's mean (``arviz_stats`` or ArviZ 0.x)."""
    if RETURNS_INFERENCEDATA:
        import arviz as az

        return az.mcse(posterior, method="mean")
    import arviz_stats

    return arviz_stats.mcse(posterior, method="mean")


def bulk_ess(posterior: xr.Dataset) -> xr.Dataset:
    """Bulk effective sample size of each variable (``arviz_stats`` or ArviZ 0.x)."""
    if RETURNS_INFERENCEDATA:
        import arviz as az

        return az.ess(posterior, method="bulk")
    import arviz_stats

    return arviz_stats.ess(posterior, method="bulk")
