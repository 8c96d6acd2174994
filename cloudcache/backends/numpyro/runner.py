"""The compiled NUTS runner and its bounded in-process cache.

One XLA executable runs warm-up and draws for all chains and evaluates the posterior outputs
(deterministics, untransformed values). It takes the PRNG keys, the initial points and the data
as arguments, so it is compiled once per *structure* -- model graph, data shapes and dtypes,
draws, tune, chains, NUTS options, device layout -- and reused when only the seed or the values
of same-shaped data change. Executables are compiled ahead of time (``jit(...).lower(...)
.compile()``), so a cache hit can never trigger a retrace, and :data:`KERNELS` counts every
compilation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from cloudcache.backends.kernel_cache import KernelCache
from cloudcache.backends.numpyro import progress
from cloudcache.backends.numpyro.devices import ChainLayout
from cloudcache.backends.numpyro.logp import ModelGraph
from cloudcache.backends.numpyro.plan import RunPlan

_CHAIN_AXIS = "chain"

#: The process-wide cache of compiled samplers and log densities.
KERNELS = KernelCache()


def _tree_depth(num_steps: jax.Array) -> jax.Array:
    """Tree depth from the number of leapfrog steps: a tree of depth d has < 2**d steps."""
    return (jnp.floor(jnp.log2(jnp.maximum(num_steps, 1))) + 1).astype(jnp.int64)


def progress_stride(plan: RunPlan) -> int:
    """Iterations between two progress reports of one chain (about 100 reports per run)."""
    return max(1, (plan.tune + plan.draws) // 100)


def _chain_runner(
    logp_fn: Callable[..., Any], outputs_fn: Callable[..., Any], plan: RunPlan
) -> Callable[..., Any]:
    """``(key, init, data) -> (outputs, stats)`` for one chain."""
    from numpyro.infer import NUTS

    kernel_kwargs = plan.kernel_kwargs()

    def run_chain(key: jax.Array, init: tuple[jax.Array, ...], data: tuple[jax.Array, ...]):
        kernel = NUTS(potential_fn=lambda values: -logp_fn(values, data), **kernel_kwargs)
        state = kernel.init(key, plan.tune, init, (), {})

        stride = progress_stride(plan)

        def report(iteration: jax.Array) -> None:
            jax.lax.cond(
                (iteration + 1) % stride == 0,
                lambda: jax.debug.callback(progress.tick, np.int64(stride)),
                lambda: None,
            )

        def warmup(state, iteration):
            report(iteration)
            return kernel.sample(state, (), {}), None

        def draw(state, iteration):
            report(iteration + plan.tune)
            state = kernel.sample(state, (), {})
            depth = _tree_depth(state.num_steps)
            stats = {
                "lp": -state.potential_energy,
                "energy": state.energy,
                "diverging": state.diverging,
                "n_steps": state.num_steps,
                "tree_depth": depth,
                "reached_max_treedepth": depth >= plan.max_tree_depth,
                "acceptance_rate": state.accept_prob,
                "step_size": state.adapt_state.step_size,
            }
            return state, (state.z, stats)

        if plan.tune:
            state, _ = jax.lax.scan(warmup, state, jnp.arange(plan.tune))
        _, (positions, stats) = jax.lax.scan(draw, state, jnp.arange(plan.draws))
        outputs = jax.vmap(lambda values: outputs_fn(values, data))(positions)
        return outputs, stats

    return run_chain


def _sampler_function(
    logp_fn: Callable[..., Any], outputs_fn: Callable[..., Any], plan: RunPlan, layout: ChainLayout
) -> tuple[Callable[..., Any], Any, Any]:
    """The all-chains function and the shardings of its chain-batched and replicated inputs."""
    one_chain = _chain_runner(logp_fn, outputs_fn, plan)
    if layout.vectorized:
        chains = jax.vmap(one_chain, in_axes=(0, 0, None))
    else:

        def chains(keys: jax.Array, init: tuple[jax.Array, ...], data: tuple[jax.Array, ...]):
            return jax.lax.map(lambda args: one_chain(*args, data), (keys, init))

    if layout.n_devices == 1:
        sharding = SingleDeviceSharding(layout.devices[0])
        return chains, sharding, sharding
    mesh = Mesh(np.array(layout.devices), (_CHAIN_AXIS,))
    batched, replicated = PartitionSpec(_CHAIN_AXIS), PartitionSpec()
    sharded = jax.shard_map(
        chains,
        mesh=mesh,
        in_specs=(batched, batched, replicated),
        out_specs=batched,
        check_vma=False,
    )
    return sharded, NamedSharding(mesh, batched), NamedSharding(mesh, replicated)


def _struct(shape: Sequence[int], dtype: Any, sharding: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype), sharding=sharding)


@dataclass(frozen=True)
class Signature:
    """Shapes and dtypes of a call's arguments: value variables and lifted data."""

    values: tuple[tuple[tuple[int, ...], str], ...]
    data: tuple[tuple[tuple[int, ...], str], ...]


def sampler_key(graph: ModelGraph, signature: Signature, plan: RunPlan, layout: ChainLayout):
    """Everything the compiled sampler depends on, and nothing else."""
    return (
        "sampler",
        graph.key,
        signature,
        plan.draws,
        plan.tune,
        plan.chains,
        plan.kernel_options,
        plan.max_tree_depth,
        layout.platform,
        layout.vectorized,
        tuple(getattr(d, "id", d) for d in layout.devices),
    )


def compiled_sampler(
    graph: ModelGraph, signature: Signature, plan: RunPlan, layout: ChainLayout
) -> Any:
    """The compiled all-chains sampler for this structure (from :data:`KERNELS` when cached)."""

    def compile_it() -> Any:
        logp_fn, outputs_fn = graph.jax_functions()
        fn, batched, replicated = _sampler_function(logp_fn, outputs_fn, plan, layout)
        keys = _struct((plan.chains, 2), np.uint32, batched)
        init = tuple(_struct((plan.chains, *s), d, batched) for s, d in signature.values)
        data = tuple(_struct(s, d, replicated) for s, d in signature.data)
        return jax.jit(fn).lower(keys, init, data).compile()

    return KERNELS.get_or_compile(sampler_key(graph, signature, plan, layout), compile_it)


def compiled_logp(graph: ModelGraph, signature: Signature, device: object) -> Any:
    """Compiled ``logp(values, data)`` for one point (used to check jittered start points)."""

    def compile_it() -> Any:
        logp_fn, _ = graph.jax_functions()
        sharding = SingleDeviceSharding(device)
        values = tuple(_struct(s, d, sharding) for s, d in signature.values)
        data = tuple(_struct(s, d, sharding) for s, d in signature.data)
        return jax.jit(logp_fn).lower(values, data).compile()

    key = ("logp", graph.key, signature, getattr(device, "id", device), str(device))
    return KERNELS.get_or_compile(key, compile_it)


def prng_keys(seeds: Sequence[int]) -> np.ndarray:
    """Raw ``uint32[chains, 2]`` PRNG keys, one per chain seed (as ``jax.random.PRNGKey``)."""
    seeds = np.asarray(seeds, dtype=np.uint64)
    return np.stack(
        [(seeds >> np.uint64(32)) & np.uint64(0xFFFFFFFF), seeds & np.uint64(0xFFFFFFFF)], axis=1
    ).astype(np.uint32)


def compiled_value_and_grad(graph: ModelGraph, signature: Signature, device: object) -> Any:
    """Compiled ``(logp, gradient)`` of ``logp(values, data)`` at one point (run checks)."""

    def compile_it() -> Any:
        logp_fn, _ = graph.jax_functions()
        sharding = SingleDeviceSharding(device)
        values = tuple(_struct(s, d, sharding) for s, d in signature.values)
        data = tuple(_struct(s, d, sharding) for s, d in signature.data)
        return jax.jit(jax.value_and_grad(logp_fn)).lower(values, data).compile()

    key = ("value_and_grad", graph.key, signature, getattr(device, "id", device), str(device))
    return KERNELS.get_or_compile(key, compile_it)
