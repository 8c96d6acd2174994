"""The compiled NUTS runner and its bounded in-process cache.

A run is three XLA programs, always in the same structure: ``init`` (the sampler's state for
every chain), ``step`` (up to :func:`step_capacity` iterations, warm-up and draws alike, called
again and again with the state of the last call; the number of iterations and where they start
are run-time arguments) and ``outputs`` (deterministics and untransformed values of every
draw). Checkpoints are taken at chunk boundaries fixed by the request (:func:`chunk_length`);
a run stopped at a boundary and resumed from the state saved there gives bit-identical draws
(XLA fuses one program the same way every time; fusing different steps together would change
floats). Where the calls of the step program begin and end does not change a float.

The programs take the PRNG keys, the initial points and the data as arguments, so they are
compiled once per *structure* -- model graph, data shapes and dtypes, tune, chains, NUTS
options, device layout; ``outputs`` also per number of draws -- and reused when only the seed,
the values of same-shaped data or (``init`` and ``step``) the number of draws change. They
are compiled ahead of time (``jit(...).lower(...).compile()``), so a cache hit can never
trigger a retrace, and :data:`KERNELS` counts every compilation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from cloudcache.backends.kernel_cache import KernelCache
from cloudcache.backends.numpyro.devices import ChainLayout
from cloudcache.backends.numpyro.logp import ModelGraph
from cloudcache.backends.numpyro.plan import RunPlan
from cloudcache.backends.numpyro.stored_programs import load_or_build
from cloudcache.compat.jax import single_device_sharding

_CHAIN_AXIS = "chain"

#: The process-wide cache of compiled samplers and log densities.
KERNELS = KernelCache()


def _tree_depth(num_steps: jax.Array) -> jax.Array:
    """Tree depth from the number of leapfrog steps: a tree of depth d has < 2**d steps."""
    return (jnp.floor(jnp.log2(jnp.maximum(num_steps, 1))) + 1).astype(jnp.int64)


#: A run is split into between ``MIN_CHUNKS`` and ``MAX_CHUNKS`` chunks, one more for every
#: ``ITERATIONS_PER_CHUNK`` chain iterations, each at least ``MIN_CHUNK`` iterations long.
MIN_CHUNKS = 10
MAX_CHUNKS = 100
ITERATIONS_PER_CHUNK = 2000
MIN_CHUNK = 10


#: Bounds of the iterations one call of the step program runs (:func:`step_capacity`), and the
#: most its draw buffers may hold.
MIN_CAPACITY = 16
MAX_CAPACITY = 1024
CAPACITY_BYTES = 256 * 2**20


def step_capacity(signature: Signature, chains: int) -> int:
    """Iterations one call of the step program runs at most: the length of its draw buffers.

    Fixed by the model's size and the chains, never by ``draws``, so runs that differ only in
    ``draws`` share one compiled step program: the largest power of two from
    :data:`MIN_CAPACITY` to :data:`MAX_CAPACITY` whose buffers hold at most
    :data:`CAPACITY_BYTES` (fewer calls for small models, bounded memory for large ones).
    """
    per_iteration = len(STAT_NAMES) * 8 + sum(
        int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        for shape, dtype in signature.values
    )
    capacity = MAX_CAPACITY
    while capacity > MIN_CAPACITY and capacity * chains * per_iteration > CAPACITY_BYTES:
        capacity //= 2
    return capacity


def chunk_length(plan: RunPlan) -> int:
    """Iterations between two checkpoint boundaries, fixed by the request (never by time or
    interruptions): one or more calls of the step program.

    Chunk boundaries are where a run can be checkpointed and resumed; each call of the step
    program costs about a millisecond, so small runs get few chunks and long runs many.
    """
    total = plan.tune + plan.draws
    chunks = min(MAX_CHUNKS, max(MIN_CHUNKS, total * plan.chains // ITERATIONS_PER_CHUNK))
    return max(MIN_CHUNK, -(-total // chunks))


#: The sampler stats every draw records, in the order the step program returns them.
STAT_NAMES = (
    "lp",
    "energy",
    "diverging",
    "n_steps",
    "tree_depth",
    "reached_max_treedepth",
    "acceptance_rate",
    "step_size",
)


def _chain_programs(
    logp_fn: Callable[..., Any], outputs_fn: Callable[..., Any], plan: RunPlan, capacity: int
) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """One chain's ``init``, ``step`` and ``outputs`` functions.

    ``init(key, values, data) -> state``; ``step(state, data, count) -> (state, (positions,
    stats))`` runs the next ``count`` iterations (at most ``capacity``, given at run time) and
    returns their positions and stats in the first ``count`` rows; ``outputs(positions, data)``
    evaluates the posterior outputs of every draw. Nothing of ``init`` and ``step`` depends on
    the run's number of draws, and no program calls back into Python (the host reports
    progress between calls), so each can be serialised (:mod:`.stored_programs`).
    """
    from numpyro.infer import NUTS

    kernel_kwargs = plan.kernel_kwargs()
    length = capacity

    def kernel_for(data: tuple[jax.Array, ...]) -> Any:
        return NUTS(potential_fn=lambda values: -logp_fn(values, data), **kernel_kwargs)

    def init(key: jax.Array, values: tuple[jax.Array, ...], data: tuple[jax.Array, ...]):
        return kernel_for(data).init(key, plan.tune, values, (), {})

    def step(state: Any, data: tuple[jax.Array, ...], count: jax.Array):
        kernel = kernel_for(data)
        # NumPyro's kernel keeps its adaptation schedule in closures made by ``init``: make them
        # (the state it computes is unused, so XLA drops that work); the run's state goes on.
        kernel.init(state.rng_key, plan.tune, state.z, (), {})

        def record(state):
            depth = _tree_depth(state.num_steps)
            stats = (
                -state.potential_energy,
                state.energy,
                state.diverging,
                state.num_steps,
                depth,
                depth >= plan.max_tree_depth,
                state.accept_prob,
                state.adapt_state.step_size,
            )
            return state.z, dict(zip(STAT_NAMES, stats, strict=True))

        buffers = jax.tree_util.tree_map(
            lambda leaf: jnp.zeros((length, *leaf.shape), leaf.dtype), jax.eval_shape(record, state)
        )

        def one(offset, carry):
            state, buffers = carry
            state = kernel.sample(state, (), {})
            buffers = jax.tree_util.tree_map(
                lambda buffer, value: buffer.at[offset].set(value), buffers, record(state)
            )
            return state, buffers

        # ``count`` (at most ``length``) is a run-time number: a call runs what is asked.
        return jax.lax.fori_loop(0, count, one, (state, buffers))

    def outputs(positions: tuple[jax.Array, ...], data: tuple[jax.Array, ...]):
        return jax.vmap(lambda values: outputs_fn(values, data))(positions)

    return init, step, outputs


def _shardings(layout: ChainLayout) -> tuple[Any, Any]:
    """``(batched, replicated)``: where arrays with a chain axis and shared arrays live."""
    if layout.n_devices == 1:
        sharding = single_device_sharding(layout.devices[0])
        return sharding, sharding
    mesh = Mesh(np.array(layout.devices), (_CHAIN_AXIS,))
    return NamedSharding(mesh, PartitionSpec(_CHAIN_AXIS)), NamedSharding(mesh, PartitionSpec())


def _all_chains(
    one_chain: Callable[..., Any], batched_args: int, layout: ChainLayout
) -> Callable[..., Any]:
    """``one_chain`` over every chain (its first ``batched_args`` arguments carry the chain
    axis, the rest are shared), laid out as ``layout`` says."""
    shared_count = one_chain.__code__.co_argcount - batched_args
    if layout.vectorized:
        chains = jax.vmap(one_chain, in_axes=(*(0,) * batched_args, *(None,) * shared_count))
    else:

        def chains(*args: Any):
            batched, shared = args[:batched_args], args[batched_args:]
            return jax.lax.map(lambda chain: one_chain(*chain, *shared), batched)

    if layout.n_devices == 1:
        return chains
    mesh = Mesh(np.array(layout.devices), (_CHAIN_AXIS,))
    batched, replicated = PartitionSpec(_CHAIN_AXIS), PartitionSpec()
    return jax.shard_map(
        chains,
        mesh=mesh,
        in_specs=(*(batched,) * batched_args, *(replicated,) * shared_count),
        out_specs=batched,
        check_vma=False,
    )


def _struct(shape: Sequence[int], dtype: Any, sharding: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype), sharding=sharding)


@dataclass(frozen=True)
class Signature:
    """Shapes and dtypes of a call's arguments: value variables and lifted data."""

    values: tuple[tuple[tuple[int, ...], str], ...]
    data: tuple[tuple[tuple[int, ...], str], ...]


def step_key(graph: ModelGraph, signature: Signature, plan: RunPlan, layout: ChainLayout):
    """Everything the ``init`` and ``step`` programs depend on: :func:`sampler_key` less draws,
    plus the step program's buffer length (:func:`step_capacity`)."""
    key = sampler_key(graph, signature, plan, layout)
    return ("steps", *key[1:3], *key[4:], step_capacity(signature, plan.chains))


def sampler_key(graph: ModelGraph, signature: Signature, plan: RunPlan, layout: ChainLayout):
    """Everything the compiled programs depend on, and nothing else."""
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


@dataclass(frozen=True)
class Programs:
    """The compiled programs of one run structure and the shape of the sampler's state.

    ``init(keys, values, data) -> state``; ``step(state, data, count) -> (state, (positions,
    stats))`` for up to ``capacity`` iterations; ``outputs(positions, data)``. ``state`` (a
    pytree of ``ShapeDtypeStruct``) rebuilds a checkpointed state from its leaves; ``chunk`` is
    the run's checkpoint interval.
    """

    init: Any
    step: Any
    outputs: Any
    state: Any
    chunk: int
    data_sharding: Any
    capacity: int


def compiled_programs(
    graph: ModelGraph, signature: Signature, plan: RunPlan, layout: ChainLayout
) -> Programs:
    """The compiled programs for this structure (from :data:`KERNELS` when cached): ``init``
    and ``step`` shared by every number of draws, ``outputs`` compiled per number of draws."""

    capacity = step_capacity(signature, plan.chains)

    def functions() -> tuple[Any, Any, Any]:
        logp_fn, outputs_fn = graph.jax_functions()
        init_one, step_one, outputs_one = _chain_programs(logp_fn, outputs_fn, plan, capacity)
        init_fn = _all_chains(init_one, 2, layout)
        step_fn = _all_chains(step_one, 1, layout)
        outputs_fn_all = _all_chains(outputs_one, 1, layout)
        return init_fn, step_fn, outputs_fn_all

    batched, replicated = _shardings(layout)

    def compile_steps() -> dict[str, Any]:
        init_fn, step_fn, _ = functions()
        keys = _struct((plan.chains, 2), np.uint32, batched)
        values = tuple(_struct((plan.chains, *s), d, batched) for s, d in signature.values)
        data = tuple(_struct(s, d, replicated) for s, d in signature.data)
        scalar = _struct((), np.int64, replicated)
        state = jax.eval_shape(init_fn, keys, values, data)
        state = jax.tree_util.tree_map(lambda leaf: _struct(leaf.shape, leaf.dtype, batched), state)
        return {
            "init": jax.jit(init_fn).lower(keys, values, data).compile(),
            "step": jax.jit(step_fn).lower(state, data, scalar).compile(),
        }

    def compile_outputs() -> dict[str, Any]:
        _, _, outputs_fn_all = functions()
        data = tuple(_struct(s, d, replicated) for s, d in signature.data)
        positions = tuple(
            _struct((plan.chains, plan.draws, *s), d, batched) for s, d in signature.values
        )
        return {"outputs": jax.jit(outputs_fn_all).lower(positions, data).compile()}

    def steps_programs() -> Programs:
        compiled = load_or_build(steps_key, graph.key.portable, layout.devices, compile_steps)
        step = compiled["step"]
        state_info = step.args_info[0][0]  # the state argument, leaf by leaf
        return Programs(
            init=compiled["init"],
            step=step,
            outputs=None,
            state=jax.tree_util.tree_map(lambda a: _struct(a.shape, a.dtype, batched), state_info),
            chunk=0,
            data_sharding=replicated,
            capacity=capacity,
        )

    steps_key = step_key(graph, signature, plan, layout)
    steps = KERNELS.get_or_compile(steps_key, steps_programs)
    outputs_key = ("outputs", *sampler_key(graph, signature, plan, layout))
    outputs = KERNELS.get_or_compile(
        outputs_key,
        lambda: load_or_build(outputs_key, graph.key.portable, layout.devices, compile_outputs)[
            "outputs"
        ],
    )
    return dataclasses.replace(steps, outputs=outputs, chunk=chunk_length(plan))


def compiled_logp(graph: ModelGraph, signature: Signature, device: object) -> Any:
    """Compiled ``logp(values, data)`` for one point (used to check jittered start points)."""

    def compile_it() -> dict[str, Any]:
        logp_fn, _ = graph.jax_functions()
        sharding = single_device_sharding(device)
        values = tuple(_struct(s, d, sharding) for s, d in signature.values)
        data = tuple(_struct(s, d, sharding) for s, d in signature.data)
        return {"logp": jax.jit(logp_fn).lower(values, data).compile()}

    key = ("logp", graph.key, signature, getattr(device, "id", device), str(device))
    return KERNELS.get_or_compile(
        key, lambda: load_or_build(key, graph.key.portable, [device], compile_it)["logp"]
    )


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
        sharding = single_device_sharding(device)
        values = tuple(_struct(s, d, sharding) for s, d in signature.values)
        data = tuple(_struct(s, d, sharding) for s, d in signature.data)
        return jax.jit(jax.value_and_grad(logp_fn)).lower(values, data).compile()

    key = ("value_and_grad", graph.key, signature, getattr(device, "id", device), str(device))
    return KERNELS.get_or_compile(key, compile_it)
