"""Which models the JAX runner cannot compile, decided without importing JAX.

:func:`unconvertible_reason` runs on every call, hits included (``Backend.refusal``), so it
must stay cheap and must not import JAX. It walks the model's generative graph (memoised per
model object and its number of variables) for ops that never have a JAX conversion:
``as_op``/``FromFunctionOp`` (a Python function). ``pm.Interpolated``'s SciPy spline is
sampled (:mod:`~cloudcache.backends.numpyro.splines`). Any other op without a conversion (a
user ``Op`` with only ``perform``) is found when the runner first builds the model's JAX
function; that discovery is remembered here for the model object (:func:`remember_refusal`),
so later calls in the process refuse before the key and a hit stays JAX-free.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from pytensor.compile.ops import FromFunctionOp
from pytensor.graph.traversal import ancestors

from cloudcache.compat.pytensor import is_instance

if TYPE_CHECKING:
    import pymc as pm

_SCANNED: weakref.WeakKeyDictionary[pm.Model, tuple[int, str | None]] = weakref.WeakKeyDictionary()
_REMEMBERED: weakref.WeakKeyDictionary[pm.Model, tuple[int, str]] = weakref.WeakKeyDictionary()


def _size(model: pm.Model) -> int:
    return len(model.named_vars)


def _describe_op(op: object) -> str | None:
    if is_instance(op, FromFunctionOp):
        return f"the model uses an as_op function ({op}) that has no JAX conversion"
    return None


def _scan(model: pm.Model) -> str | None:
    roots = [*model.basic_RVs, *model.potentials, *model.deterministics]
    for var in ancestors(roots):
        owner = var.owner
        if owner is None:
            continue
        reason = _describe_op(owner.op)
        if reason is not None:
            return reason
    return None


def unconvertible_reason(model: pm.Model) -> str | None:
    """Why the model has no JAX conversion, when that is known without JAX (else ``None``)."""
    size = _size(model)
    remembered = _REMEMBERED.get(model)
    if remembered is not None and remembered[0] == size:
        return remembered[1]
    scanned = _SCANNED.get(model)
    if scanned is None or scanned[0] != size:
        scanned = (size, _scan(model))
        _SCANNED[model] = scanned
    return scanned[1]


def remember_refusal(model: pm.Model, reason: str) -> None:
    """Record that building ``model``'s JAX function failed for ``reason`` (in this process)."""
    _REMEMBERED[model] = (_size(model), reason)
