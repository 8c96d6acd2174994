"""PyMC's own sampler, called untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymc as pm
import xarray as xr

from cloudcache.calls.request import SampleRequest
from cloudcache.compat.pymc import as_tree
from cloudcache.util.versions import installed_versions


class PymcBackend:
    """Runs ``pm.sample`` exactly as the user called it (``nuts_sampler="pymc"`` unless given).

    Its result is returned as a DataTree (PyMC 5's ``InferenceData`` converted, arrays shared),
    like every backend's.
    """

    name = "pymc"

    def library_versions(self) -> dict[str, str]:
        return installed_versions("pymc", "pytensor")

    def refusal(self, model: pm.Model, request: SampleRequest) -> str | None:
        return None  # PyMC's own sampler runs every model PyMC can sample

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
