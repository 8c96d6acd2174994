"""PyMC's own sampler, called untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymc as pm
import xarray as xr

from cloudcache.backends.base import Backend
from cloudcache.backends.request import SampleRequest
from cloudcache.compat.pymc import as_tree


class PymcBackend(Backend):
    """Runs ``pm.sample`` exactly as the user called it (``nuts_sampler="pymc"`` unless given).

    Its result is returned as a DataTree (PyMC 5's ``InferenceData`` converted, arrays shared),
    like every backend's.
    """

    name = "pymc"

    def sample(
        self,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
    ) -> xr.DataTree:
        arguments = request.pymc_arguments(model=model)
        if arguments.get("nuts_sampler") is None:
            arguments["nuts_sampler"] = "pymc"
        return as_tree(pymc_sample(**arguments))
