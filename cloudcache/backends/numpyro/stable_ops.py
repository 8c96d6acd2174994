"""A max/min reduction whose JAX gradient cannot turn into NaN under XLA fusion.

JAX differentiates ``reduce_max`` by comparing the operand with the maximum for exact equality
and dividing by the number of ties. Under ``jit`` XLA may compute the operand twice, once in the
fusion that takes the maximum and once in the fusion that forms that comparison, and the two
copies can differ in the last bit (LLVM contracts ``a * b - c`` into a fused multiply-add in one
loop and not in the other). No element then equals the maximum, the tie count is 0 and the
gradient is ``0 / 0 = NaN``. Every ``logsumexp`` (mixtures, marginalised discrete variables,
``pm.math.logsumexp``) differentiates such a maximum, so a two-component Poisson mixture whose
observations are a runtime argument got NaN gradients (with the data as constants XLA folds the
operand and the two copies agree, which hid the bug).

:func:`stabilise_reductions` swaps every ``Max``/``Min`` in a graph for an op that reduces via
``argmax``/``argmin`` and gathers the value at that index: its gradient flows to that index,
with no equality test between two computations. Values are identical; only the subgradient at
exact ties differs (all to the first index instead of split evenly), which is measure-zero and
cancels inside ``logsumexp``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from pytensor.graph.fg import FunctionGraph
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.tensor.math import Max, Min

from cloudcache.compat.pytensor import reduction_initial, reduction_settings


class GatherMax(Max):
    """``Max`` reduced through ``argmax`` (same values; a gradient without tie counting)."""


class GatherMin(Min):
    """``Min`` reduced through ``argmin`` (same values; a gradient without tie counting)."""


def _reduced_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    return tuple(range(ndim)) if axis is None else tuple(int(a) % max(ndim, 1) for a in axis)


def _gather_reduce(op: Max | Min, pick: Any, fallback: Any) -> Any:
    def reduce(x: Any) -> Any:
        axes = _reduced_axes(op.axis, x.ndim)
        if x.ndim == 0 or not axes:
            return x
        kept = [a for a in range(x.ndim) if a not in axes]
        size = int(np.prod([x.shape[a] for a in axes]))
        if size == 0:  # nothing to gather: the reduction's own identity value
            return fallback(x, axis=axes, initial=reduction_initial(op, x.dtype))
        moved = jnp.transpose(x, (*kept, *axes)).reshape((*[x.shape[a] for a in kept], size))
        index = pick(moved, axis=-1, keepdims=True)
        return jnp.take_along_axis(moved, index, axis=-1)[..., 0]

    return reduce


@jax_funcify.register(GatherMax)
def _funcify_gather_max(op: GatherMax, **_: Any) -> Any:
    return _gather_reduce(op, jnp.argmax, jnp.max)


@jax_funcify.register(GatherMin)
def _funcify_gather_min(op: GatherMin, **_: Any) -> Any:
    return _gather_reduce(op, jnp.argmin, jnp.min)


def stabilise_reductions(fgraph: FunctionGraph) -> None:
    """Replace every float ``Max``/``Min`` node of ``fgraph`` (in place) by its gather form."""
    for node in list(fgraph.toposort()):
        op = node.op
        if type(op) not in (Max, Min) or node.inputs[0].dtype not in ("float32", "float64"):
            continue
        kind = GatherMax if type(op) is Max else GatherMin
        replacement = kind(op.axis, **reduction_settings(op)).make_node(*node.inputs).outputs[0]
        fgraph.replace(node.outputs[0], replacement, import_missing=True)
