"""``pm.Interpolated``'s log density as arithmetic JAX can trace.

PyMC evaluates an ``Interpolated`` density with a SciPy spline inside ``SplineWrapper``, an op
with no JAX conversion. The spline is always linear (``k=1``) and zero outside its points
(``ext="zeros"``), so it is exactly a linear interpolation of its knots' values:
:func:`splines_as_arithmetic` swaps each such ``SplineWrapper`` for that interpolation,
written in PyTensor ops that JAX converts (``searchsorted``, indexing, elementwise math) and
that JAX differentiates piecewise as SciPy's derivative spline does. A spline is swapped only
once it is *proven* linear: it agrees with the interpolation at every knot, at seven points
inside every interval (so no polynomial piece of degree up to 6, above SciPy's 5, can differ)
and outside the knots. Any other spline is left alone and the model is refused for lack of a
JAX conversion, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.dist_math import SplineWrapper
from pytensor.graph.basic import Variable
from pytensor.graph.replace import clone_replace
from pytensor.graph.traversal import ancestors

#: Where inside each interval the spline must agree with the interpolation (fractions).
PROBE_FRACTIONS = np.array([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875])


def linear_knots(spline: object) -> tuple[np.ndarray, np.ndarray] | None:
    """``(knots, values)`` when ``spline`` is a linear interpolation that is zero outside its
    knots, else ``None``."""
    try:
        knots = np.asarray(spline.get_knots(), dtype=float)  # type: ignore[attr-defined]
        values = np.asarray(spline(knots), dtype=float)  # type: ignore[operator]
    except Exception:
        return None
    if knots.ndim != 1 or knots.size < 2 or not np.all(np.diff(knots) > 0):
        return None
    inside = (knots[:-1, None] + np.diff(knots)[:, None] * PROBE_FRACTIONS).ravel()
    outside = np.array([knots[0] - 1.0, knots[-1] + 1.0])
    probes = np.concatenate([inside, outside])
    expected = np.interp(probes, knots, values, left=0.0, right=0.0)
    got = np.asarray(spline(probes), dtype=float)  # type: ignore[operator]
    scale = max(float(np.max(np.abs(values))), 1e-300)
    if not np.allclose(got, expected, rtol=1e-10, atol=1e-12 * scale):
        return None
    return knots, values


def _interpolation(x: Variable, knots: np.ndarray, values: np.ndarray) -> Variable:
    """``np.interp(x, knots, values, left=0, right=0)`` in PyTensor ops (``x``'s dtype)."""
    xs = pt.constant(knots.astype(x.dtype))
    ys = pt.constant(values.astype(x.dtype))
    segment = pt.extra_ops.searchsorted(xs, x, side="right") - 1
    segment = pt.clip(segment, 0, knots.size - 2)
    x0, x1 = xs[segment], xs[segment + 1]
    y0, y1 = ys[segment], ys[segment + 1]
    line = y0 + (x - x0) * ((y1 - y0) / (x1 - x0))
    return pt.switch((x < xs[0]) | (x > xs[-1]), pt.zeros_like(x), line)


def splines_as_arithmetic(outputs: Sequence[Variable]) -> list[Variable]:
    """``outputs`` with every provably linear ``SplineWrapper`` replaced by its interpolation
    (the graphs are copied; the model's own graphs are untouched)."""
    replacements = {}
    for var in ancestors(list(outputs)):
        node = var.owner
        if node is None or not isinstance(node.op, SplineWrapper) or var in replacements:
            continue
        found = linear_knots(node.op.spline)
        if found is not None:
            replacements[var] = _interpolation(node.inputs[0], *found)
    if not replacements:
        return list(outputs)
    return list(clone_replace(list(outputs), replace=replacements))
