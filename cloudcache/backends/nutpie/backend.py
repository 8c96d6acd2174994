"""nutpie backend: PyMC's nutpie path, with the compiled model reused across calls.

A miss goes: plan the request (or refuse it, see :mod:`.plan`) -> the compiled model for this
structure with the current data (:mod:`.compiled`; compiled at most once per process) ->
``nutpie.sample`` with PyMC's seed, options and progress bar -> PyMC's own post-processing
(``constant_data``, ``observed_data``, posterior attributes), so the DataTree is shaped exactly
as the installed PyMC's ``pm.sample(nuts_sampler="nutpie")`` shapes it
(:mod:`cloudcache.compat.nutpie`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pymc as pm
import xarray as xr

from cloudcache.backends.nutpie.compiled import COMPILED, compiled_model
from cloudcache.backends.nutpie.plan import NutpiePlan, NutpiePlanner, plan_nutpie
from cloudcache.backends.request import SampleRequest
from cloudcache.compat.nutpie import (
    finished_result,
    import_nutpie,
    nutpie_seed,
    progress,
    sample_options,
)
from cloudcache.errors import BackendRefused


def run_nutpie(model: pm.Model, plan: NutpiePlan, random_seed: Any) -> xr.DataTree:
    """Sample ``model`` with nutpie as ``plan`` says; the seed is derived as ``pm.sample`` does."""
    nutpie = import_nutpie()

    seed = nutpie_seed(random_seed, plan.chains)
    before_seconds = COMPILED.compile_seconds
    compiled = compiled_model(model, plan)
    bar, bar_options = progress(plan)
    start = time.time()
    with bar:
        result = nutpie.sample(
            compiled,
            draws=plan.draws,
            tune=plan.tune,
            chains=plan.chains,
            cores=plan.cores,
            seed=seed,
            target_accept=plan.target_accept,
            maxdepth=plan.maxdepth,
            **sample_options(plan),
            **bar_options,
        )
    tree = finished_result(result, model, time.time() - start, plan.tune)
    tree.attrs["cloudcache_backend"] = "nutpie"
    tree.attrs["compile_time"] = round(COMPILED.compile_seconds - before_seconds, 6)
    return tree


class NutpieBackend(NutpiePlanner):
    """Samples with nutpie (Rust NUTS over numba-compiled PyTensor), compiled once per structure."""

    def sample(
        self,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
    ) -> xr.DataTree:
        """Sample ``model`` on the CPU (nutpie has no GPU path; ``device="gpu"`` is refused)."""
        if device == "gpu":
            raise BackendRefused("nutpie runs on the CPU only")
        plan = plan_nutpie(request)  # BackendRefused: a setting nutpie cannot honour
        try:
            return run_nutpie(model, plan, request.random_seed)
        except NotImplementedError as error:  # an Op numba cannot compile: nothing was drawn
            raise BackendRefused(f"numba cannot compile this model ({error})") from error
