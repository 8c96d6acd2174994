"""PyMC's own sampler, called untouched."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pymc as pm
import xarray as xr

from cloudcache.request import SampleRequest


class PymcBackend:
    """Runs ``pm.sample`` exactly as the user called it (``nuts_sampler="pymc"`` unless given)."""

    name = "pymc"

    def library_versions(self) -> dict[str, str]:
        return {"pymc": version("pymc"), "pytensor": version("pytensor")}

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
        return pymc_sample(**arguments)
