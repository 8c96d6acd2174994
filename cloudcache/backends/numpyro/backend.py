"""NumPyro/JAX backend: NUTS from a compiled runner that is reused across calls.

A miss goes: plan the request (or hand it to PyMC, see :mod:`.plan`) -> lift the model's
data to arguments (:mod:`.logp`) -> jittered start points checked with a compiled log density
-> the compiled all-chains sampler for this structure (:mod:`.runner`, compiled at most
once per process and loaded from JAX's persistent cache in a new one) -> DataTree and PyMC's
convergence warnings (:mod:`.results`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudcache.backends.numpyro import checked_programs
from cloudcache.backends.numpyro.plan import NumpyroPlanner, RunPlan, plan_request
from cloudcache.backends.numpyro.prepared import PreparedRun
from cloudcache.backends.numpyro.support import remember_refusal
from cloudcache.backends.request import SampleRequest
from cloudcache.compat.pymc import chain_seeds, init_jitter, initial_point_functions
from cloudcache.errors import BackendRefused
from cloudcache.util.forks import ForkSafeLock

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from cloudcache.backends.numpyro.devices import ChainLayout
    from cloudcache.backends.numpyro.logp import ModelGraph
    from cloudcache.backends.numpyro.result_imports import ResultImports
    from cloudcache.backends.numpyro.runner import Signature

_log = logging.getLogger("cloudcache")


def _enable_x64() -> None:
    """PyTensor's float64 graphs need JAX's 64-bit mode: set as importing PyTensor's JAX
    dispatch sets it (not imported here: a run whose programs are kept on disk never needs it,
    :mod:`.stored_programs`)."""
    import jax
    from pytensor import config

    jax.config.update("jax_enable_x64", config.floatX == "float64")


def _signature_of(values: Sequence[np.ndarray], data: Sequence[np.ndarray]) -> Signature:
    from cloudcache.backends.numpyro.runner import Signature

    def sig(arrays: Sequence[np.ndarray]) -> tuple[tuple[tuple[int, ...], str], ...]:
        return tuple((tuple(np.shape(a)), np.asarray(a).dtype.str) for a in arrays)

    return Signature(values=sig(values), data=sig(data))


def model_label(model: pm.Model) -> str:
    """How errors name a model: its name, else its free variables."""
    names = [v.name for v in model.free_RVs]
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"model {model.name!r}" if model.name else f"the model with free variables ({shown})"


#: PyMC's initial-point functions reseed their random generator on every call, and the kept
#: ones are shared by the misses of a model: one thread at a time draws start points.
_START_POINTS = ForkSafeLock()


def _initial_points(
    model: pm.Model,
    graph: ModelGraph,
    plan: RunPlan,
    seeds: Sequence[int],
    data: Sequence[np.ndarray],
    layout: ChainLayout,
) -> tuple[np.ndarray, ...]:
    """Jittered start points (as ``pm.sample`` jitters them), stacked as ``(chains, *shape)``."""
    from cloudcache.backends.numpyro.per_model import kept_for_model
    from cloudcache.backends.numpyro.runner import compiled_logp
    from cloudcache.fingerprint.canonical import content_digest

    names = [v.name for v in graph.value_vars]

    def point_logp(point: dict[str, np.ndarray]) -> float:
        values = tuple(
            np.asarray(point[n], dtype=v.dtype)
            for n, v in zip(names, graph.value_vars, strict=True)
        )
        executable = compiled_logp(graph, _signature_of(values, data), layout.devices[0])
        return float(executable(values, tuple(data)))

    functions = kept_for_model(  # compiling them is most of the jitter's cost
        model,
        ("initial points", content_digest(plan.initvals), plan.jitter, len(seeds)),
        lambda: initial_point_functions(
            model, plan.initvals, jitter=plan.jitter, chains=len(seeds)
        ),
    )
    with _START_POINTS:
        points = init_jitter(
            model,
            plan.initvals,
            seeds=seeds,
            jitter=plan.jitter,
            jitter_max_retries=plan.jitter_max_retries,
            logp_fn=point_logp,
            functions=functions,
        )
    return tuple(
        np.stack([np.asarray(p[n], dtype=v.dtype) for p in points])
        for n, v in zip(names, graph.value_vars, strict=True)
    )


def _evaluations(
    graph: ModelGraph, init: tuple[np.ndarray, ...], data: Sequence[np.ndarray], device: object
) -> list[tuple[float, Any]]:
    """``(logp, gradient)`` of ``graph``'s program at each chain's start point."""
    from cloudcache.backends.numpyro.runner import compiled_value_and_grad

    chains = init[0].shape[0] if init else 0
    results = []
    for chain in range(chains):
        values = tuple(a[chain] for a in init)
        executable = compiled_value_and_grad(graph, _signature_of(values, data), device)
        logp, gradient = executable(values, tuple(data))
        results.append((float(logp), [np.asarray(g) for g in gradient]))
    return results


def _start_point_problem(
    model: pm.Model, graph: ModelGraph, plan: RunPlan, init: tuple[np.ndarray, ...], device: object
) -> str | None:
    """Why ``graph``'s program must not be used (``None``: it may).

    With data as runtime arguments the program must agree with the constants-only program in
    log density and gradient at the start points; any program needs a finite log density and
    gradient there (else :class:`SamplerFailure`).
    """
    from cloudcache.backends.numpyro.logp import model_graph
    from cloudcache.backends.numpyro.run_checks import nonfinite_at, program_disagreement
    from cloudcache.errors import SamplerFailure

    data = graph.data_values()
    own = _evaluations(graph, init, data, device)
    if not graph.lifted:
        symptom = nonfinite_at(own)
        if symptom is not None:
            raise SamplerFailure(f"cannot sample {model_label(model)}: {symptom}")
        return None
    constant = model_graph(model, plan.var_names, plan.keep_untransformed, lift=False)
    reference = _evaluations(constant, init, [], device)
    return program_disagreement(own, reference) or nonfinite_at(own)


def prepare_run(
    model: pm.Model,
    plan: RunPlan,
    random_seed: Any,
    device: str,
    layout: ChainLayout | None = None,
    *,
    lift: bool = True,
) -> PreparedRun:
    """Plan -> compiled sampler (from cache when possible) and its arguments for this call.

    ``layout`` overrides the automatic chain layout (benchmarks use it). ``lift=False`` keeps
    every datum a compile-time constant (the safe program). Raises :class:`BackendRefused`
    when the runner cannot sample the model at all.
    """
    from cloudcache.backends.numpyro.devices import prepare_cpu_devices

    prepare_cpu_devices()  # before anything initialises JAX's backend
    from cloudcache.backends.numpyro.jax_cache import compilation_cache_scope

    _enable_x64()
    with compilation_cache_scope():  # JAX's settings are put back after the run's compilations
        return _prepare(model, plan, random_seed, device, layout, lift=lift)


def _prepare(
    model: pm.Model,
    plan: RunPlan,
    random_seed: Any,
    device: str,
    layout: ChainLayout | None,
    *,
    lift: bool,
) -> PreparedRun:
    from cloudcache.backends.numpyro.devices import chain_layout
    from cloudcache.backends.numpyro.logp import model_graph
    from cloudcache.backends.numpyro.runner import KERNELS, compiled_programs

    discrete = model.discrete_value_vars
    if discrete:
        raise BackendRefused(
            f"the model has discrete free variables ({', '.join(map(str, discrete))})"
        )
    if plan.var_names is not None and not plan.var_names:
        raise ValueError("var_names is empty")
    # Converted to JAX only when a program is built (BackendRefused when an op has no JAX
    # conversion, raised before any draw); programs kept on disk need no conversion.
    graph = model_graph(model, plan.var_names, plan.keep_untransformed, lift=lift)
    if layout is None:
        layout = chain_layout(device, plan.chains, plan.chain_method)
    seeds = chain_seeds(random_seed, plan.chains)
    data = graph.data_values()
    before = KERNELS.compile_seconds
    init = _initial_points(model, graph, plan, seeds, data, layout)
    signature = _signature_of([a[0] for a in init], data)
    portable = graph.key.portable  # identity-keyed values mean nothing in another process
    if not checked_programs.passed(graph.key.digest, signature, portable):
        problem = _start_point_problem(model, graph, plan, init, layout.devices[0])
        if problem is not None:
            _log.warning(
                "cloudcache: data as runtime arguments change the result of %s (%s); "
                "compiling it with the data as constants.",
                model_label(model),
                problem,
            )
            return prepare_run(model, plan, random_seed, device, layout, lift=False)
        checked_programs.record_pass(graph.key.digest, signature, portable)
    executable = compiled_programs(graph, signature, plan, layout)
    return PreparedRun(
        graph, plan, layout, seeds, init, data, executable, KERNELS.compile_seconds - before
    )


def run_prepared(model: pm.Model, run: PreparedRun) -> xr.DataTree:
    """Launch the compiled sampler and build the DataTree.

    Raises :class:`~cloudcache.backends.numpyro.run_checks.SamplerFailure` when the run shows
    the signs of a broken sampler (nothing is returned, so nothing is cached).
    """
    from cloudcache.backends.numpyro.chunked_run import keep_final_state, progress_text, run_chunks
    from cloudcache.backends.numpyro.result_imports import ResultImports
    from cloudcache.backends.numpyro.results import build_datatree
    from cloudcache.backends.numpyro.run_checks import failure_symptom
    from cloudcache.backends.numpyro.runner import prng_keys
    from cloudcache.errors import SamplerFailure
    from cloudcache.stores.checkpoints import RESUMED_ATTR
    from cloudcache.stores.final_states import EXTENDED_ATTR
    from cloudcache.util.background import in_background
    from cloudcache.util.deferred import after_storing

    plan = run.plan
    start = time.perf_counter()
    # A new process imports the result's libraries while the sampler runs (the GIL is free
    # then), started once sampling starts: reading a checkpoint or a stored run (zip archives,
    # Python work) beside the imports took 0.9 s instead of 0.15 s (radon, 22,500 draws
    # resumed). The checks' libraries come last and are waited for only by the checks.
    imports = ResultImports(checks=plan.compute_convergence_checks)
    try:
        ran = run_chunks(run, prng_keys(run.seeds), imports.start)
        sampling_time = time.perf_counter() - start
        imports.wait_for_building()
    except BaseException:
        imports.wait()
        raise
    outputs, stats = ran.outputs, ran.stats
    symptom = failure_symptom(stats, plan.draws)
    if symptom is not None:
        ran.saving.wait()
        imports.wait()
        raise SamplerFailure(f"sampling {model_label(model)} failed: {symptom}")
    # Kept from here on (a sampler failure above keeps nothing): a process killed while the
    # tree is built, PyMC's convergence checks run (NumPy sorts, seconds on long runs) or the
    # entry is written finds it and samples nothing again. Written while they run, as is the
    # last checkpoint if its save was still under way.
    keeping = in_background(keep_final_state, run, ran)
    try:
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
        said = progress_text(run, ran)
        if said is not None:  # the cache path records and announces it
            tree.attrs[{"resumed": RESUMED_ATTR, "extended": EXTENDED_ATTR}[said[0]]] = said[1]
    except BaseException:
        imports.wait()
        raise
    finally:
        keeping.join()
    if plan.compute_convergence_checks:  # once the result is stored, when it is
        after_storing(functools.partial(_convergence_checks, imports, tree, model, plan.quiet))
    return tree


def _convergence_checks(
    imports: ResultImports, tree: xr.DataTree, model: pm.Model, quiet: bool
) -> None:
    """PyMC's convergence checks of ``tree``, once the libraries they import are imported."""
    from cloudcache.backends.numpyro.convergence import convergence_warnings

    imports.wait()
    convergence_warnings(tree, model, quiet=quiet)


class NumpyroBackend(NumpyroPlanner):
    """Samples with NumPyro's NUTS kernel through a compiled, reused JAX runner.

    Importing this class and asking :meth:`refusal` never imports JAX (cache hits stay light).
    """

    def sample(
        self,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
    ) -> xr.DataTree:
        """Sample ``model`` as ``request`` asks, on ``device`` ("auto" | "cpu" | "gpu").

        Raises :class:`BackendRefused` (before any draw) when the runner cannot sample it; the
        session then samples with PyMC's own sampler under that backend's key.
        """
        from cloudcache.errors import SamplerFailure

        try:
            plan = plan_request(request)
            if not request.arguments.get("quiet") and request.draws < 100:
                _log.warning(
                    "Only %d samples per chain. Reliable r-hat and ESS diagnostics require "
                    "longer chains for accurate estimate.",
                    request.draws,
                )
            run = prepare_run(model, plan, request.random_seed, device)
        except BackendRefused as reason:
            remember_refusal(model, str(reason))
            raise
        try:
            return run_prepared(model, run)
        except SamplerFailure as failure:
            if not run.graph.lifted:
                raise
            _log.warning("cloudcache: %s; retrying once with the data as constants.", failure)
        run = prepare_run(model, plan, request.random_seed, device, lift=False)
        return run_prepared(model, run)
