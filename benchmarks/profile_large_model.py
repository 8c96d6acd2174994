"""Where the NumPyro backend's time goes on a large hierarchical model, next to PyMC's sampler.

    python benchmarks/profile_large_model.py [--n-obs 100000] [--draws 100] [--parts ...]

Prints one JSON document with these parts (``--parts`` picks some):

- ``gradient``: milliseconds per log density + gradient evaluation at the initial point, PyMC's
  compiled C function (``model.logp_dlogp_function()``) vs the JAX function our runner builds,
  called from Python and inside a compiled loop (as NUTS calls it). Measured in a child process
  pinned to one core, and in one free to use every core.
- ``compile``: trace / lower / XLA compile seconds of the runner for 4 chains on the default
  CPU layout (persistent cache off, so the compile is real).
- ``fixed_work``: both samplers do the same work - fixed step size, no adaptation, tree depth
  capped at 6 (63 leapfrog steps a draw) - and we report milliseconds per leapfrog step per
  chain: our runner on each CPU layout, PyMC's NUTS with ``cores=2``.
- ``xla_ops``: microseconds per gradient evaluation spent in each XLA operation (JAX's
  profiler, one pinned core), largest first.

The model is ``bench_numpyro.hierarchical_model`` (varying intercepts and slopes, 100 groups).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CLOUDCACHE_JAX_CACHE_DIR", "off")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_numpyro import _cpu, hierarchical_model

PARTS = ("gradient", "compile", "fixed_work", "xla_ops")
FIXED_STEP_SIZE = 0.001
FIXED_TREE_DEPTH = 6


def _jax_logp(model):
    """The runner's JAX log density, its data and the initial point, on the default device."""
    import jax.numpy as jnp

    from cloudcache.backends.numpyro import backend
    from cloudcache.backends.numpyro.logp import model_graph

    backend._enable_x64()
    graph = model_graph(model)
    logp_fn, _ = graph.jax_functions()
    point = model.initial_point()
    values = tuple(jnp.asarray(point[v.name]) for v in graph.value_vars)
    data = tuple(jnp.asarray(d) for d in graph.data_values())
    return logp_fn, values, data


def _per_call_ms(fn, calls: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def gradient_times(n_obs: int) -> dict[str, float]:
    """ms per logp+gradient: PyMC's C function, our JAX function (Python call, compiled loop)."""
    import jax
    from pymc.blocking import DictToArrayBijection

    model = hierarchical_model(n_obs)
    point = model.initial_point()
    pymc_fn = model.logp_dlogp_function(ravel_inputs=True)
    pymc_fn.set_extra_values({})
    flat = DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars}).data

    logp_fn, values, data = _jax_logp(model)
    value_and_grad = jax.jit(jax.value_and_grad(logp_fn))
    loop_len = 2000

    def loop(v, d):
        def body(_, carry):
            v, total = carry
            lp, grad = jax.value_and_grad(logp_fn)(v, d)
            return jax.tree.map(lambda a, g: a + 1e-9 * g, v, grad), total + lp

        return jax.lax.fori_loop(0, loop_len, body, (v, 0.0))

    compiled_loop = jax.jit(loop).lower(values, data).compile()
    jax.block_until_ready(compiled_loop(values, data))
    best = min(
        _per_call_ms(lambda: jax.block_until_ready(compiled_loop(values, data)), 1)
        for _ in range(3)
    )
    return {
        "pymc_c_logp_dlogp_ms": round(_per_call_ms(lambda: pymc_fn(flat), 1000), 4),
        "jax_value_and_grad_python_call_ms": round(
            _per_call_ms(lambda: jax.block_until_ready(value_and_grad(values, data)), 1000), 4
        ),
        "jax_value_and_grad_in_compiled_loop_ms": round(best / loop_len, 4),
    }


def xla_op_times(n_obs: int, top: int = 12) -> dict[str, float]:
    """Microseconds per gradient evaluation in each XLA operation (JAX's profiler)."""
    import jax
    from jax.profiler import ProfileData

    logp_fn, values, data = _jax_logp(hierarchical_model(n_obs))
    executable = (
        jax.jit(jax.value_and_grad(logp_fn))
        .lower(values, data)
        .compile(compiler_options={"xla_cpu_enable_xprof_traceme": True})
    )
    jax.block_until_ready(executable(values, data))
    calls = 200
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        for _ in range(calls):
            jax.block_until_ready(executable(values, data))
        jax.profiler.stop_trace()
        trace = sorted(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True))[-1]
        profile = ProfileData.from_file(trace)
    names = {line.split("=")[0].strip().lstrip("%") for line in executable.as_text().splitlines()}
    total: collections.Counter[str] = collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            for event in line.events:
                if event.name in names:
                    total[event.name] += event.duration_ns
    return {name: round(ns / calls / 1e3, 1) for name, ns in total.most_common(top)}


def _child(part: str, n_obs: int, pinned: bool) -> dict[str, Any]:
    """Run ``part`` in a fresh process; ``pinned``: the child keeps to one core."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, __file__, "--child", part, "--n-obs", str(n_obs)]
    if pinned:
        command += ["--pin", str(max(os.sched_getaffinity(0)))]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compile_split(n_obs: int) -> dict[str, Any]:
    """Trace / lower / compile seconds of the 4-chain runner on the default CPU layout."""
    import jax
    import numpy as np
    import pymc.sampling.mcmc as mcmc

    from cloudcache.backends.numpyro.backend import _enable_x64, _signature_of
    from cloudcache.backends.numpyro.devices import chain_layout
    from cloudcache.backends.numpyro.logp import model_graph
    from cloudcache.backends.numpyro.plan import plan_request
    from cloudcache.backends.numpyro.runner import _sampler_function, _struct
    from cloudcache.calls.request import normalize_sample_call

    _enable_x64()
    model = hierarchical_model(n_obs)
    request = normalize_sample_call(
        mcmc.sample, (), {"draws": 1000, "tune": 1000, "chains": 4, "model": model}
    )
    plan = plan_request(request)
    layout = chain_layout("cpu", plan.chains)
    graph = model_graph(model)
    point = model.initial_point()
    signature = _signature_of([point[v.name] for v in graph.value_vars], graph.data_values())
    start = time.perf_counter()
    logp_fn, outputs_fn = graph.jax_functions()
    fn, batched, replicated = _sampler_function(logp_fn, outputs_fn, plan, layout)
    keys = _struct((plan.chains, 2), np.uint32, batched)
    init = tuple(_struct((plan.chains, *s), d, batched) for s, d in signature.values)
    data = tuple(_struct(s, d, replicated) for s, d in signature.data)
    t_pytensor = time.perf_counter()
    traced = jax.jit(fn).trace(keys, init, data)
    t_trace = time.perf_counter()
    lowered = traced.lower()
    t_lower = time.perf_counter()
    lowered.compile()
    t_compile = time.perf_counter()
    return {
        "layout": layout.describe(),
        "pytensor_to_jax_s": round(t_pytensor - start, 2),
        "trace_s": round(t_trace - t_pytensor, 2),
        "lower_s": round(t_lower - t_trace, 2),
        "xla_compile_s": round(t_compile - t_lower, 2),
    }


@contextlib.contextmanager
def _quiet_pymc():
    import logging

    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def fixed_work(n_obs: int, draws: int) -> dict[str, Any]:
    """ms per leapfrog step per chain with the same fixed-step, depth-6 NUTS in both samplers."""
    # The backend module must come first: it asks JAX for one CPU device per core.
    from cloudcache.backends.numpyro.backend import plan_request, prepare_run, run_prepared  # isort: skip
    import jax
    import pymc as pm
    import pymc.sampling.mcmc as mcmc

    from cloudcache.backends.numpyro.devices import ChainLayout
    from cloudcache.calls.request import normalize_sample_call

    model = hierarchical_model(n_obs)
    chains = 2
    cpus = jax.devices("cpu")
    if len(cpus) < 2:
        raise RuntimeError(f"fixed_work needs 2 CPU devices, JAX has {len(cpus)}")
    layouts = {
        "ours: 2 devices, 1 chain each (default)": ChainLayout("cpu", tuple(cpus[:2]), False),
        "ours: 1 device, 2 chains one after the other": ChainLayout("cpu", tuple(cpus[:1]), False),
    }
    nuts = {
        "step_size": FIXED_STEP_SIZE,
        "adapt_step_size": False,
        "adapt_mass_matrix": False,
        "find_heuristic_step_size": False,
        "max_treedepth": FIXED_TREE_DEPTH,
    }
    settings = {
        "draws": draws,
        "tune": 0,
        "chains": chains,
        "init": "adapt_diag",
        "compute_convergence_checks": False,
    }
    out: dict[str, Any] = {}
    for name, layout in layouts.items():
        request = normalize_sample_call(
            mcmc.sample,
            (),
            {**settings, "model": model, "random_seed": 0, "nuts": nuts},
        )
        run = prepare_run(model, plan_request(request), 0, "cpu", layout=layout)
        run_prepared(model, run)  # first run pays one-off imports and thread start-up
        wall, cpu = time.perf_counter(), _cpu()
        tree = run_prepared(model, run)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        steps = int(tree.sample_stats.n_steps.sum())
        parallel = min(chains, layout.n_devices)
        out[name] = {
            "leapfrog_steps": steps,
            "sampling_wall_s": round(wall, 2),
            "process_cpu_s": round(cpu, 2),
            "ms_per_step_per_chain": round(wall / steps * parallel * 1e3, 4),
        }
    size = sum(v.size for v in model.initial_point().values())
    with model, _quiet_pymc():
        step = pm.NUTS(
            step_scale=FIXED_STEP_SIZE * size**0.25,
            max_treedepth=FIXED_TREE_DEPTH,
            adapt_step_size=False,
        )
        wall = time.perf_counter()
        tree = mcmc.sample(
            **settings,
            step=step,
            cores=2,
            random_seed=0,
            progressbar=False,
        )
        wall = time.perf_counter() - wall
    steps = int(tree.sample_stats.n_steps.sum())
    sampling = float(tree.posterior.attrs["sampling_time"])
    out["pymc: NUTS, cores=2"] = {
        "leapfrog_steps": steps,
        "sampling_wall_s": round(sampling, 2),
        "wall_incl_compile_and_workers_s": round(wall, 2),
        "ms_per_step_per_chain": round(sampling / steps * min(chains, 2) * 1e3, 4),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-obs", type=int, default=100_000)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--parts", nargs="*", choices=PARTS, default=list(PARTS))
    parser.add_argument("--child", choices=["gradient", "xla_ops"], help=argparse.SUPPRESS)
    parser.add_argument("--pin", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pin is not None:  # before JAX starts its threads, so they all inherit it
        os.sched_setaffinity(0, {args.pin})
    if args.child == "gradient":
        print(json.dumps(gradient_times(args.n_obs)))
        return
    if args.child == "xla_ops":
        print(json.dumps(xla_op_times(args.n_obs)))
        return
    result: dict[str, Any] = {"benchmark": f"profile, hierarchical model, {args.n_obs} obs"}
    if "gradient" in args.parts:
        result["gradient_one_core"] = _child("gradient", args.n_obs, pinned=True)
        result["gradient_all_cores"] = _child("gradient", args.n_obs, pinned=False)
    if "compile" in args.parts:
        result["compile"] = compile_split(args.n_obs)
    if "fixed_work" in args.parts:
        result["fixed_work"] = fixed_work(args.n_obs, args.draws)
    if "xla_ops" in args.parts:
        result["xla_ops_us_per_gradient_one_core"] = _child("xla_ops", args.n_obs, pinned=True)
    result["cores"] = len(os.sched_getaffinity(0))
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
