"""NumPyro/JAX backend: NUTS from a compiled runner that is reused across calls.

A miss goes: plan the request (or hand it to PyMC, see :mod:`numpyro_plan`) -> lift the model's
data to arguments (:mod:`jax_logp`) -> jittered start points checked with a compiled log density
-> the compiled all-chains sampler for this structure (:mod:`numpyro_runner`, compiled at most
once per process and loaded from JAX's persistent cache in a new one) -> DataTree and PyMC's
convergence warnings (:mod:`results`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import pymc as pm
import xarray as xr

from cloudcache.backends.jax_devices import ChainLayout, chain_layout, prepare_cpu_devices
from cloudcache.backends.jax_logp import ModelGraph, UnsupportedModel, model_graph
from cloudcache.backends.numpyro_plan import LIBRARIES, Fallback, RunPlan, plan_request, refusal
from cloudcache.backends.numpyro_runner import (
    KERNELS,
    Signature,
    compiled_logp,
    compiled_sampler,
    prng_keys,
    progress_stride,
)
from cloudcache.backends.progress import progress_bar
from cloudcache.backends.results import build_datatree, convergence_warnings
from cloudcache.jax_cache import enable_persistent_cache
from cloudcache.request import SampleRequest
from cloudcache.versions import installed_versions

_log = logging.getLogger("cloudcache")

# Must run before JAX initialises its backend (see jax_devices); harmless afterwards.
prepare_cpu_devices()


def _enable_x64() -> None:
    """PyTensor's float64 graphs need JAX's 64-bit mode (importing its JAX dispatch sets it)."""
    import pytensor.link.jax.dispatch  # noqa: F401


def chain_seeds(random_seed: Any, chains: int) -> list[int]:
    """Per-chain seeds derived exactly as ``pm.sample`` derives them."""
    from pymc.util import get_random_generator

    if isinstance(random_seed, bool) or (
        isinstance(random_seed, int | np.integer) and random_seed == -1
    ):
        raise ValueError("random_seed must be an int >= 0, a sequence, a Generator or None")
    rngs = get_random_generator(random_seed).spawn(chains)
    return [int(rng.integers(2**30)) for rng in rngs]


def _signature_of(values: Sequence[np.ndarray], data: Sequence[np.ndarray]) -> Signature:
    def sig(arrays: Sequence[np.ndarray]) -> tuple[tuple[tuple[int, ...], str], ...]:
        return tuple((tuple(np.shape(a)), np.asarray(a).dtype.str) for a in arrays)

    return Signature(values=sig(values), data=sig(data))


@dataclass
class PreparedRun:
    """Everything needed to launch the compiled sampler once."""

    graph: ModelGraph
    plan: RunPlan
    layout: ChainLayout
    seeds: list[int]
    init: tuple[np.ndarray, ...]
    data: list[np.ndarray]
    executable: Any
    compile_seconds: float


def _initial_points(
    model: pm.Model,
    graph: ModelGraph,
    plan: RunPlan,
    seeds: Sequence[int],
    data: Sequence[np.ndarray],
    layout: ChainLayout,
) -> tuple[np.ndarray, ...]:
    """Jittered start points (PyMC's ``_init_jitter``), stacked as ``(chains, *shape)``."""
    from pymc.sampling.mcmc import _init_jitter

    names = [v.name for v in graph.value_vars]

    def point_logp(point: dict[str, np.ndarray]) -> float:
        values = tuple(
            np.asarray(point[n], dtype=v.dtype)
            for n, v in zip(names, graph.value_vars, strict=True)
        )
        executable = compiled_logp(graph, _signature_of(values, data), layout.devices[0])
        return float(executable(values, tuple(data)))

    points = _init_jitter(
        model,
        plan.initvals,
        seeds=list(seeds),
        jitter=plan.jitter,
        jitter_max_retries=plan.jitter_max_retries,
        logp_fn=point_logp,
    )
    return tuple(
        np.stack([np.asarray(p[n], dtype=v.dtype) for p in points])
        for n, v in zip(names, graph.value_vars, strict=True)
    )


def prepare_run(
    model: pm.Model,
    plan: RunPlan,
    random_seed: Any,
    device: str,
    layout: ChainLayout | None = None,
) -> PreparedRun:
    """Plan -> compiled sampler (from cache when possible) and its arguments for this call.

    ``layout`` overrides the automatic chain layout (benchmarks use it).
    """
    _enable_x64()
    enable_persistent_cache()
    discrete = model.discrete_value_vars
    if discrete:
        raise Fallback(f"the model has discrete free variables ({', '.join(map(str, discrete))})")
    if plan.var_names is not None and not plan.var_names:
        raise ValueError("var_names is empty")
    try:
        graph = model_graph(model, plan.var_names, plan.keep_untransformed)
    except UnsupportedModel as exc:
        raise Fallback(str(exc)) from exc
    if layout is None:
        layout = chain_layout(device, plan.chains, plan.chain_method)
    seeds = chain_seeds(random_seed, plan.chains)
    data = graph.data_values()
    before = KERNELS.compile_seconds
    init = _initial_points(model, graph, plan, seeds, data, layout)
    signature = _signature_of([a[0] for a in init], data)
    executable = compiled_sampler(graph, signature, plan, layout)
    return PreparedRun(
        graph, plan, layout, seeds, init, data, executable, KERNELS.compile_seconds - before
    )


def run_prepared(model: pm.Model, run: PreparedRun) -> xr.DataTree:
    """Launch the compiled sampler and build the DataTree."""
    plan = run.plan
    per_chain = plan.tune + plan.draws
    reported = per_chain // progress_stride(plan) * progress_stride(plan)
    description = f"Sampling {plan.chains} chains on {run.layout.describe()}"
    start = time.perf_counter()
    with progress_bar(plan.chains * reported, description, enabled=plan.progressbar):
        outputs, stats = run.executable(prng_keys(run.seeds), run.init, tuple(run.data))
        outputs, stats = jax.device_get((outputs, stats))
    sampling_time = time.perf_counter() - start
    tree = build_datatree(
        model,
        run.graph.output_names,
        outputs,
        stats,
        tune=plan.tune,
        sampling_time=sampling_time,
        idata_kwargs=plan.idata_kwargs,
        extra_attrs={
            "cloudcache_backend": "numpyro",
            "cloudcache_device": run.layout.describe(),
            "compile_time": round(run.compile_seconds, 6),
        },
    )
    if plan.compute_convergence_checks:
        convergence_warnings(tree, model, quiet=plan.quiet)
    return tree


class NumpyroBackend:
    """Samples with NumPyro's NUTS kernel through a compiled, reused JAX runner."""

    name = "numpyro"

    def library_versions(self) -> dict[str, str]:
        return installed_versions(*LIBRARIES)

    def refusal(self, model: pm.Model, request: SampleRequest) -> str | None:
        """Arguments only PyMC's sampler honours, or discrete free variables."""
        return refusal(model, request)

    def sample(
        self,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
    ) -> xr.DataTree:
        """Sample ``model`` as ``request`` asks, on ``device`` ("auto" | "cpu" | "gpu")."""
        try:
            plan = plan_request(request)
            if not request.arguments.get("quiet") and request.draws < 100:
                _log.warning(
                    "Only %d samples per chain. Reliable r-hat and ESS diagnostics require "
                    "longer chains for accurate estimate.",
                    request.draws,
                )
            run = prepare_run(model, plan, request.random_seed, device)
        except Fallback as reason:
            _log.warning("cloudcache: sampling with PyMC's own sampler: %s.", reason)
            return pymc_sample(**request.pymc_arguments(model=model))
        return run_prepared(model, run)
