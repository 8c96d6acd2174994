"""Raw runner output -> the ``xarray.DataTree`` that ``pm.sample`` returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from cloudcache.compat.pymc import as_pymc_result, as_tree

if TYPE_CHECKING:
    import pymc as pm


#: dtypes of the sample_stats variables, as PyMC's samplers store them.
STAT_DTYPES: dict[str, Any] = {
    "lp": np.float64,
    "energy": np.float64,
    "diverging": bool,
    "n_steps": np.int64,
    "tree_depth": np.int64,
    "reached_max_treedepth": bool,
    "acceptance_rate": np.float64,
    "step_size": np.float64,
}


def build_datatree(
    model: pm.Model,
    output_names: Sequence[str],
    outputs: Sequence[Any],
    stats: Mapping[str, Any],
    *,
    tune: int,
    sampling_time: float,
    idata_kwargs: Mapping[str, Any],
    extra_attrs: Mapping[str, Any],
) -> xr.DataTree:
    """The DataTree for one run: posterior, sample_stats, observed_data, constant_data."""
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )

    from cloudcache.compat.arviz import sampler_tree

    kwargs = dict(idata_kwargs)
    log_likelihood = kwargs.pop("log_likelihood", False)
    posterior = {name: np.asarray(value) for name, value in zip(output_names, outputs, strict=True)}
    sample_stats = {
        name: np.asarray(stats[name]).astype(dtype, copy=False)
        for name, dtype in STAT_DTYPES.items()
    }
    groups = {
        "posterior": posterior,
        "sample_stats": sample_stats,
        "observed_data": find_observations(model),
        "constant_data": find_constants(model),
    }
    coords, dims = coords_and_dims_for_inferencedata(model)
    coords.update(kwargs.pop("coords", None) or {})
    dims.update(kwargs.pop("dims", None) or {})
    run_attrs = {"sampling_time": float(sampling_time), "tuning_steps": int(tune), **extra_attrs}
    tree = sampler_tree(
        groups,
        coords=coords,
        dims=dims,
        run_attrs=run_attrs,
        library="numpyro",
        from_dict_kwargs=kwargs,
    )
    if log_likelihood:
        tree = _add_log_likelihood(tree, model, log_likelihood)
    return tree


def _add_log_likelihood(tree: xr.DataTree, model: pm.Model, which: Any) -> xr.DataTree:
    """Pointwise log likelihood (``idata_kwargs={"log_likelihood": True}``), as PyMC adds it."""
    from pymc.stats.log_density import compute_log_likelihood

    return as_tree(
        compute_log_likelihood(
            as_pymc_result(tree),
            var_names=None if which is True else which,
            extend_inferencedata=True,
            model=model,
            sample_dims=["chain", "draw"],
            progressbar=False,
        )
    )
