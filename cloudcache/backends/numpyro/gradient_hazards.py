"""Graph constructs whose gradient the JAX runner computes wrongly under XLA's fusion.

PyTensor converts ``clip(x, lo, hi)`` to ``where(x < lo, lo, where(x > hi, hi, x))``; its
gradient masks the cotangent with that comparison. Under ``jit`` XLA copies the cheap
computation of ``x`` and of the mask into every fusion that consumes the masked cotangent, and
LLVM contracts ``a * b + c`` into a fused multiply-add in some copies and not in others. Where
``x`` sits on the bound up to rounding the copies disagree about the mask. PyMC's stationary
covariances clip the squared distances at 0 and their diagonal is exactly such a point: the
three paths of each diagonal entry's gradient (``-2 x.x`` and twice ``|x|^2``) no longer cancel.

On PyTensor 2 (JAX 0.10) the gradient of ``gp.Marginal``'s length scale was off by up to 300x
at random points (PyMC's own ``nuts_sampler="numpyro"`` computes the same wrong gradient). On
PyTensor 3 (JAX 0.12) a gradient program of its own agrees with PyMC's to 1e-13, but inside
NUTS's compiled step (the values a tuple of scalars) the fusion differs and the gradient is
wrong again: on the gallery's ``gp_marginal`` the step size collapsed to 2e-4 and the chains
stuck (``eta`` sd 0.02 against 0.56, ``sigma`` mean 0.64 against 0.23), while the same model
with the clip removed sampled right in the same program. No placement of the mask survives
XLA's fusion (an ``optimization_barrier`` is removed before fusion; a ``custom_vjp`` residual is
recomputed the same way), so such models go to the next backend (nutpie, else PyMC's sampler)
on every PyTensor.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytensor.graph.basic import Variable
from pytensor.graph.op import Op
from pytensor.graph.traversal import io_toposort
from pytensor.scalar.basic import Clip, Composite
from pytensor.tensor.elemwise import Elemwise

#: Why a model with a differentiated float clip is refused (one line).
CLIP_GRADIENT_REASON = (
    "a clip on a path of the log density's gradient (e.g. a GP covariance's distances): "
    "its JAX gradient is wrong under XLA fusion"
)


def _has_clip(op: Op) -> bool:
    if not isinstance(op, Elemwise):
        return False
    scalar = op.scalar_op
    if isinstance(scalar, Clip):
        return True
    return isinstance(scalar, Composite) and any(
        isinstance(node.op, Clip) for node in scalar.fgraph.apply_nodes
    )


def gradient_hazard(value_vars: Sequence[Variable], outputs: Sequence[Variable]) -> str | None:
    """Why the JAX gradient of ``outputs`` w.r.t. ``value_vars`` is unreliable (else ``None``)."""
    dependent = set(value_vars)
    for node in io_toposort(list(value_vars), list(outputs)):
        if not any(var in dependent for var in node.inputs):
            continue
        dependent.update(node.outputs)
        if _has_clip(node.op) and node.outputs[0].dtype.startswith("float"):
            return CLIP_GRADIENT_REASON
    return None
