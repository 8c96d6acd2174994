"""A small zoo of real models for the mutation suite, built from module-level helpers.

Each builder reads module-level values and helper functions on purpose: the mutations change
them the way a notebook user would (edit an array in place, reassign a global, redefine a helper,
flip a model flag) and the key must follow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.distributions.transforms import Interval
from pymc.logprob.transforms import Transform

N = 24
RNG = np.random.default_rng(5)
X = RNG.normal(size=N)
GROUP = np.arange(N) % 3
Y = 1.0 + 2.0 * X + RNG.normal(scale=0.5, size=N)
Y_MISSING = Y.copy()
Y_MISSING[[2, 7]] = np.nan

#: Read by ``custom_logp`` as a global.
SCALE = 1.0
#: Read by ``penalty`` as a global.
STRENGTH = 1.0


def center(value: Any, mu: Any) -> Any:
    """Module-level helper that ``custom_logp`` calls (the mutations redefine it)."""
    return value - mu


def custom_logp(value: Any, mu: Any) -> Any:
    """Normal log density with a global scale, written as user code."""
    z = center(value, mu) / SCALE
    return -0.5 * z**2 - pt.log(SCALE)


def penalty(b: Any, weight: float = 1.0) -> Any:
    """A Potential term built by a helper."""
    return -STRENGTH * weight * b**2


class Shift(Transform):
    """A custom transform: an unconstrained shift by a constant."""

    name = "shift"

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def forward(self, value: Any, *inputs: Any) -> Any:
        return value - self.offset

    def backward(self, value: Any, *inputs: Any) -> Any:
        return value + self.offset

    def log_jac_det(self, value: Any, *inputs: Any) -> Any:
        return pt.zeros_like(value)


def hierarchical(
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    group: np.ndarray | None = None,
    check_bounds: bool = True,
    prior_sd: float = 1.0,
) -> pm.Model:
    """Varying intercepts with a ``pm.Data`` covariate, coords, dims and a deterministic."""
    x = X if x is None else x
    y = Y if y is None else y
    group = GROUP if group is None else group
    with pm.Model(coords={"group": ["a", "b", "c"]}, check_bounds=check_bounds) as model:
        xd = pm.Data("x", x)
        alpha = pm.Normal("alpha", 0.0, prior_sd, dims="group")
        beta = pm.Normal("beta", 0.0, 1.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        mu = pm.Deterministic("mu", alpha[group] + beta * xd)
        pm.Normal("y", mu, sigma, observed=y)
    return model


def covariate(x: np.ndarray, y: np.ndarray) -> pm.Model:
    """The issue's notebook model: ``x`` is held by reference as a graph constant."""
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 5.0)
        pm.Normal("y", b * x, 0.3, observed=y)
    return model


def custom_dist() -> pm.Model:
    """``pm.CustomDist`` whose ``logp`` is user code reading a global and a helper."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 2.0)
        pm.CustomDist("y", mu, logp=custom_logp, observed=Y)
    return model


def closure_dist(scale: float) -> pm.Model:
    """``pm.CustomDist`` whose ``logp`` is a closure over ``scale``."""

    def logp(value: Any, mu: Any) -> Any:
        return -0.5 * ((value - mu) / scale) ** 2

    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 2.0)
        pm.CustomDist("y", mu, logp=logp, observed=Y)
    return model


def potential(weight: float = 1.0) -> pm.Model:
    """A ``pm.Potential`` built by a helper reading a global."""
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 3.0)
        pm.Potential("pen", penalty(b, weight))
        pm.Normal("y", b, 1.0, observed=Y[:5])
    return model


def transformed(lower: float = 0.0, upper: float = 5.0, offset: float = 0.5) -> pm.Model:
    """An ``Interval`` transform with explicit bounds and a custom transform."""
    with pm.Model() as model:
        pm.Normal("a", 1.0, 1.0, transform=Interval(lower, upper))
        pm.Normal("b", 0.0, 1.0, transform=Shift(offset))
    return model


def masked(y: np.ndarray | None = None) -> pm.Model:
    """Observations with NaNs: PyMC imputes them (a mask and index arrays in the graph)."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 2.0)
        pm.Normal("y", mu, 1.0, observed=Y_MISSING if y is None else y)
    return model


def same_named_shared(first: np.ndarray, second: np.ndarray) -> tuple[pm.Model, Any, Any]:
    """Two different shared variables that happen to share a name (returned with the model)."""
    s1 = pytensor.shared(first, name="s")
    s2 = pytensor.shared(second, name="s")
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.0)
        pm.Normal("y1", b * s1, 1.0, observed=Y[:4])
        pm.Normal("y2", b * s2, 1.0, observed=Y[:4])
    return model, s1, s2
