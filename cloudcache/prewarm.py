"""``cloudcache.prewarm``: compile the NumPyro runner for a model and request without sampling."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pymc as pm


@dataclass(frozen=True)
class PrewarmResult:
    """What `prewarm` did."""

    compiled: bool
    """True when a new executable was built (False: already in this process's cache)."""
    seconds: float
    """Wall time of the call (graph, start points, compilation or cache load)."""
    layout: str | None
    """Device layout the runner will use, e.g. ``"cpux2-sequential"``."""
    jax_cache_dir: str | None
    """JAX persistent compilation cache directory (None when switched off)."""
    fallback: str | None = None
    """Why the request would go to PyMC's own sampler instead (nothing compiled)."""


def prewarm(model: pm.Model, *, device: str = "auto", **sample_kwargs: Any) -> PrewarmResult:
    """Compile (and persist) the sampler ``pm.sample(**sample_kwargs)`` would use for ``model``.

    A later ``pm.sample`` with the same structure inside ``cloudcache.cloud(...)`` (in this
    process, or in another one through JAX's persistent compilation cache) skips compilation.

    Args:
        model: The model to compile for.
        device: ``"auto"``, ``"cpu"`` or ``"gpu"``, as in ``cloud(device=...)``.
        **sample_kwargs: The keyword arguments of ``pm.sample`` (``draws``, ``tune``,
            ``chains``, ``target_accept``...). The seed and the values of ``pm.Data`` do not
            matter, their shapes do.

    Returns:
        What was compiled, how long it took and where JAX's cache is.

    Examples:
        ```python
        result = cc.prewarm(model, draws=1000, tune=1000, chains=4)
        result.compiled, result.seconds  # (True, 4.2) the first time
        ```
    """
    from cloudcache.backends.numpyro import jax_cache
    from cloudcache.backends.numpyro.backend import prepare_run
    from cloudcache.backends.numpyro.plan import plan_request
    from cloudcache.backends.numpyro.runner import KERNELS
    from cloudcache.calls import dispatch
    from cloudcache.calls.request import normalize_sample_call
    from cloudcache.errors import BackendRefused

    # pymc.sample may be patched by an open cloud() block: bind against PyMC's own function.
    pymc_sample = dispatch.original("sample")
    request = normalize_sample_call(pymc_sample, (), {**sample_kwargs, "model": model})
    start = time.perf_counter()
    before = KERNELS.compilations
    try:
        plan = plan_request(request)
        run = prepare_run(model, plan, request.random_seed, device)
    except BackendRefused as reason:
        return PrewarmResult(
            compiled=False,
            seconds=time.perf_counter() - start,
            layout=None,
            jax_cache_dir=jax_cache.cache_dir(),
            fallback=str(reason),
        )
    return PrewarmResult(
        compiled=KERNELS.compilations > before,
        seconds=time.perf_counter() - start,
        layout=run.layout.describe(),
        jax_cache_dir=jax_cache.cache_dir(),
    )
