"""Checks that keep a broken run from becoming a cached posterior.

* :func:`program_disagreement`: the program with data as runtime arguments and the same program
  with data as constants must give the same log density and gradient at the start points.
* :func:`failure_symptom`: a finished run with the signs of a broken sampler (adapted step size
  collapsed to ~0, every draw of a chain divergent, a chain that never moved). Some divergences
  are not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Relative / absolute tolerance between the two programs (they differ only in XLA's fusion).
RTOL, ATOL = 1e-6, 1e-8

#: An adapted step size below this is a collapsed one.
COLLAPSED_STEP_SIZE = 1e-10

#: Runs shorter than this are too short to call "every draw divergent" or "never moved".
MIN_DRAWS_FOR_CHAIN_CHECKS = 10


def _flatten(gradient: Sequence[Any]) -> np.ndarray:
    parts = [np.ravel(np.asarray(g, dtype=np.float64)) for g in gradient]
    return np.concatenate(parts) if parts else np.zeros(0)


def nonfinite_at(evaluations: Sequence[tuple[float, Sequence[Any]]]) -> str | None:
    """Which of log density / gradient is not finite at some start point (``None``: all are)."""
    for chain, (logp, gradient) in enumerate(evaluations):
        if not np.isfinite(logp):
            return f"the log density is {logp} at the initial point of chain {chain}"
        if not np.all(np.isfinite(_flatten(gradient))):
            return f"the gradient is not finite at the initial point of chain {chain}"
    return None


def program_disagreement(
    lifted: Sequence[tuple[float, Sequence[Any]]], constant: Sequence[tuple[float, Sequence[Any]]]
) -> str | None:
    """How the two programs' ``(logp, gradient)`` evaluations differ (``None``: they agree)."""
    for chain, ((lp_a, grad_a), (lp_b, grad_b)) in enumerate(zip(lifted, constant, strict=True)):
        if not np.allclose(lp_a, lp_b, rtol=RTOL, atol=ATOL, equal_nan=True):
            return f"log density {lp_a} vs {lp_b} at start point {chain}"
        a, b = _flatten(grad_a), _flatten(grad_b)
        if not np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True):
            worst = int(np.nanargmax(np.abs(a - b))) if np.isfinite(a - b).any() else 0
            return f"gradient {a[worst]} vs {b[worst]} at start point {chain}"
    return None


def failure_symptom(stats: Mapping[str, np.ndarray], draws: int) -> str | None:
    """The first sign of a broken sampler in the post-warm-up stats (``(chains, draws)``)."""
    step_size = np.asarray(stats["step_size"])
    if step_size.size and np.any(step_size[:, -1] < COLLAPSED_STEP_SIZE):
        chain = int(np.argmax(step_size[:, -1] < COLLAPSED_STEP_SIZE))
        return f"the adapted step size of chain {chain} collapsed to {step_size[chain, -1]:.3g}"
    lp = np.asarray(stats["lp"])
    if not np.all(np.isfinite(lp)):
        return "the log density of some draws is not finite"
    if draws < MIN_DRAWS_FOR_CHAIN_CHECKS:
        return None
    diverging = np.asarray(stats["diverging"]).astype(bool)
    for chain in range(diverging.shape[0]):
        if diverging[chain].all():
            return f"every draw of chain {chain} diverged"
    for chain in range(lp.shape[0]):
        if np.ptp(lp[chain]) == 0.0:
            return f"chain {chain} never moved from its first draw"
    return None
