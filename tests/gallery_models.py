"""A gallery of small, realistic PyMC models (the kinds of the PyMC example gallery).

Each :class:`GalleryCase` builds a fresh model from small synthetic data with a fixed seed, so
the same case builds the same model in any process. ``tests/test_gallery.py`` samples every
case through ``cloud()`` with every backend ``backend="auto"`` can choose and compares with PyMC's
own sampler; other suites may reuse :data:`GALLERY`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.compile.ops import as_op

from cloudcache.compat.pytensor import PYTENSOR_MAJOR


@dataclass(frozen=True)
class GalleryCase:
    """One gallery model and what the cache must do with it."""

    name: str
    build: Callable[[], pm.Model]
    #: Backend -> a fragment of its reason for handing this model to PyMC's own sampler (a
    #: backend not named here samples the model itself).
    handed_to_pymc: Mapping[str, str] = field(default_factory=dict)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def linear_regression() -> pm.Model:
    rng = _rng(1)
    x = rng.normal(size=50)
    y = 1.0 + 2.0 * x + rng.normal(scale=0.7, size=50)
    with pm.Model(coords={"obs": np.arange(50)}) as model:
        xd = pm.Data("x", x, dims="obs")
        a = pm.Normal("a", 0, 5)
        b = pm.Normal("b", 0, 5)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", a + b * xd, sigma, observed=y, dims="obs")
    return model


def hierarchical_radon() -> pm.Model:
    rng = _rng(2)
    groups = 8
    idx = rng.integers(groups, size=120)
    floor = rng.integers(2, size=120).astype(float)
    alpha = rng.normal(1.5, 0.4, size=groups)
    y = alpha[idx] - 0.6 * floor + rng.normal(scale=0.5, size=120)
    with pm.Model(coords={"county": np.arange(groups), "obs": np.arange(120)}) as model:
        mu_a = pm.Normal("mu_a", 0, 5)
        sigma_a = pm.HalfNormal("sigma_a", 1)
        z = pm.Normal("z", 0, 1, dims="county")
        a = pm.Deterministic("a", mu_a + sigma_a * z, dims="county")
        b = pm.Normal("b", 0, 2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", a[idx] + b * floor, sigma, observed=y, dims="obs")
    return model


def eight_schools() -> pm.Model:
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    with pm.Model(coords={"school": np.arange(8)}) as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta_t = pm.Normal("theta_t", 0, 1, dims="school")
        theta = pm.Deterministic("theta", mu + tau * theta_t, dims="school")
        pm.Normal("obs", theta, sigma, observed=y, dims="school")
    return model


def robust_regression() -> pm.Model:
    rng = _rng(3)
    x = rng.uniform(-2, 2, size=70)
    y = 0.5 + 1.5 * x + rng.standard_t(3, size=70) * 0.5
    with pm.Model() as model:
        a = pm.Normal("a", 0, 5)
        b = pm.Normal("b", 0, 5)
        sigma = pm.HalfNormal("sigma", 2)
        nu = pm.Gamma("nu", 2, 0.1)
        pm.StudentT("y", nu=nu, mu=a + b * x, sigma=sigma, observed=y)
    return model


def logistic_regression() -> pm.Model:
    rng = _rng(4)
    x = rng.normal(size=(100, 2))
    p = 1 / (1 + np.exp(-(0.3 + x @ np.array([1.0, -1.5]))))
    y = rng.binomial(1, p)
    with pm.Model(coords={"coef": ["x0", "x1"]}) as model:
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 2, dims="coef")
        pm.Bernoulli("y", logit_p=a + pt.dot(x, b), observed=y)
    return model


def poisson_regression() -> pm.Model:
    rng = _rng(5)
    x = rng.normal(size=90)
    y = rng.poisson(np.exp(0.5 + 0.8 * x))
    with pm.Model() as model:
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 2)
        pm.Poisson("y", mu=pm.math.exp(a + b * x), observed=y)
    return model


def poisson_mixture() -> pm.Model:
    """The issue's wrong posterior: 80 counts as a runtime argument."""
    rng = _rng(6)
    y = np.concatenate([rng.poisson(1.9, 40), rng.poisson(8.0, 40)])
    with pm.Model() as model:
        lam = pm.Gamma(
            "lam", 2.0, 0.4, shape=2, transform=pm.distributions.transforms.ordered,
            initval=np.array([1.0, 6.0]),
        )  # fmt: skip
        w = pm.Dirichlet("w", np.ones(2))
        pm.Mixture("y", w=w, comp_dists=pm.Poisson.dist(lam), observed=y)
    return model


def negative_binomial_mixture() -> pm.Model:
    """Two well separated components (means 4.3 and 23, 60 counts each): with 40 counts of
    means 3.3 and 20 the weights' posterior sd was 0.2 and four chains of 2000 draws of PyMC's
    own sampler disagreed (the gallery's comparison failed 56 % of seeds against itself)."""
    rng = _rng(7)
    y = np.concatenate([rng.negative_binomial(10, 0.7, 60), rng.negative_binomial(10, 0.3, 60)])
    with pm.Model() as model:
        mu = pm.Gamma(
            "mu", 2.0, 0.2, shape=2, transform=pm.distributions.transforms.ordered,
            initval=np.array([3.0, 20.0]),
        )  # fmt: skip
        alpha = pm.Gamma("alpha", 2.0, 0.2)
        w = pm.Dirichlet("w", np.ones(2))
        pm.Mixture("y", w=w, comp_dists=pm.NegativeBinomial.dist(mu=mu, alpha=alpha), observed=y)
    return model


def normal_mixture() -> pm.Model:
    rng = _rng(8)
    y = np.concatenate([rng.normal(-2, 0.7, 60), rng.normal(2, 0.7, 40)])
    with pm.Model() as model:
        mu = pm.Normal(
            "mu", 0, 5, shape=2, transform=pm.distributions.transforms.ordered,
            initval=np.array([-1.0, 1.0]),
        )  # fmt: skip
        sigma = pm.HalfNormal("sigma", 2)
        w = pm.Dirichlet("w", np.ones(2))
        pm.NormalMixture("y", w=w, mu=mu, sigma=sigma, observed=y)
    return model


def stick_breaking() -> pm.Model:
    """Truncated stick-breaking mixture with as many ordered components as clusters.

    One component per well-separated cluster keeps the posterior unimodal: with more components
    than clusters (a truncated Dirichlet process) the spare components' means and sticks settle
    in one of several modes per chain, and PyMC's own sampler and nutpie disagree with
    themselves from seed to seed, so no comparison of means can tell a right sampler from a
    wrong one. The last stick takes the remainder, so the weights sum to one by construction.
    """
    rng = _rng(9)
    y = np.concatenate([rng.normal(-4, 1, 40), rng.normal(0, 1, 40), rng.normal(4, 1, 40)])
    k = 3
    with pm.Model() as model:
        alpha = pm.Gamma("alpha", 2.0, 2.0)
        beta = pm.Beta("beta", 1.0, alpha, shape=k - 1)
        rest = pt.concatenate([[1.0], pt.extra_ops.cumprod(1 - beta)])
        w = pm.Deterministic("w", pt.concatenate([beta, [1.0]]) * rest)
        mu = pm.Normal(
            "mu", 0, 5, shape=k, transform=pm.distributions.transforms.ordered,
            initval=np.linspace(-4, 4, k),
        )  # fmt: skip
        pm.NormalMixture("y", w=w, mu=mu, sigma=1.0, observed=y)
    return model


def dirichlet_process() -> pm.Model:
    """The issue's wrong posterior: a truncated Dirichlet-process mixture (12 sticks, two
    clusters) written as PyMC's example writes it, the weights not renormalised.

    The mixture's parameter check ``isclose(sum(w), 1)`` then confines the sticks: the mass
    left after the last stick must stay below 1e-5. NumPyro once dropped the check and sampled
    that remainder up to 7e-4 (and a weight's sd 6x PyMC's): ``sums_to_one``, the check itself,
    is 1 in every draw of a right sampler. The occupied components have informative priors and
    the spare components' means stay near 0, where no data are (the clusters are at -5 and 5):
    one mode, no component taking part of a cluster. The spare weights and the remainder are
    products of up to 12 sticks, so heavy-tailed that no sd of a few hundred draws estimates
    them: they are not stored.
    """
    rng = _rng(28)
    y = np.concatenate([rng.normal(-5, 1, 50), rng.normal(5, 1, 50)])
    k = 12
    with pm.Model(coords={"component": np.arange(k), "occupied": [0, 1]}) as model:
        alpha = pm.Gamma("alpha", 2.0, 2.0)
        beta = pm.Beta(
            "beta", 1.0, alpha, dims="component", initval=np.array([0.5] + [0.9] * (k - 1))
        )
        w = beta * pt.concatenate([[1.0], pt.extra_ops.cumprod(1 - beta)[:-1]])
        pm.Deterministic("w_occupied", w[:2], dims="occupied")
        pm.Deterministic("sums_to_one", pt.isclose(pt.sum(w), 1.0))
        mu = pm.Normal("mu", np.array([-5.0, 5.0] + [0.0] * (k - 2)), 1.0, dims="component")
        pm.NormalMixture("y", w=w, mu=mu, sigma=1.0, observed=y)
    return model


def gp_marginal() -> pm.Model:
    rng = _rng(10)
    x = np.linspace(0, 10, 30)[:, None]
    y = np.sin(x[:, 0]) + rng.normal(scale=0.3, size=30)
    with pm.Model() as model:
        ell = pm.Gamma("ell", 4, 2)
        eta = pm.HalfNormal("eta", 2)
        gp = pm.gp.Marginal(cov_func=eta**2 * pm.gp.cov.ExpQuad(1, ell))
        sigma = pm.HalfNormal("sigma", 1)
        gp.marginal_likelihood("y", X=x, y=y, sigma=sigma)
    return model


def hsgp() -> pm.Model:
    rng = _rng(11)
    x = np.linspace(0, 10, 80)[:, None]
    y = np.sin(x[:, 0]) + rng.normal(scale=0.3, size=80)
    with pm.Model() as model:
        ell = pm.Gamma("ell", 4, 2)
        eta = pm.HalfNormal("eta", 2)
        gp = pm.gp.HSGP(m=[12], c=1.5, cov_func=eta**2 * pm.gp.cov.Matern52(1, ell))
        f = gp.prior("f", X=x)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", f, sigma, observed=y)
    return model


def autoregressive() -> pm.Model:
    rng = _rng(12)
    y = np.zeros(80)
    for t in range(1, 80):
        y[t] = 0.6 * y[t - 1] + rng.normal(scale=0.5)
    with pm.Model() as model:
        rho = pm.Normal("rho", 0, 0.5, shape=1)
        sigma = pm.HalfNormal("sigma", 1)
        pm.AR("y", rho=rho, sigma=sigma, init_dist=pm.Normal.dist(0, 1), observed=y)
    return model


def random_walk_dims() -> pm.Model:
    """The issue's crash: the length of ``time`` decides a split."""
    rng = _rng(13)
    y = np.cumsum(rng.normal(scale=0.3, size=70)) + rng.normal(scale=0.3, size=70)
    with pm.Model(coords={"time": np.arange(70)}) as model:
        sigma = pm.HalfNormal("sigma", 1)
        walk = pm.GaussianRandomWalk(
            "walk", sigma=sigma, init_dist=pm.Normal.dist(0, 2), dims="time"
        )
        pm.Normal("y", walk, 0.3, observed=y, dims="time")
    return model


def scan_ar1() -> pm.Model:
    rng = _rng(14)
    y = np.zeros(60)
    for t in range(1, 60):
        y[t] = 0.5 * y[t - 1] + rng.normal(scale=0.4)
    with pm.Model() as model:
        phi = pm.Uniform("phi", -1, 1)
        sigma = pm.HalfNormal("sigma", 1)
        data = pt.as_tensor_variable(y)

        def step(prev, cur, phi_, sigma_):
            return pm.logp(pm.Normal.dist(phi_ * prev, sigma_), cur)

        terms = pytensor.scan(
            step, sequences=[data[:-1], data[1:]], non_sequences=[phi, sigma], return_updates=False
        )
        pm.Potential("ar1", terms.sum())
    return model


def censored_normal() -> pm.Model:
    rng = _rng(15)
    y = np.clip(rng.normal(1.0, 1.5, size=90), -1.0, 2.5)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        sigma = pm.HalfNormal("sigma", 3)
        pm.Censored("y", pm.Normal.dist(mu, sigma), lower=-1.0, upper=2.5, observed=y)
    return model


def truncated_normal() -> pm.Model:
    """200 observations of a normal with mean 1 truncated at 0: with 70 of mean 0.5, ``mu``'s
    heavy left tail made its sd vary 1.5x from chain to chain of PyMC's own sampler (the
    comparison caught a 2x sd error in 62 % of seeds only)."""
    rng = _rng(16)
    draws = rng.normal(1.0, 1.0, size=1000)
    y = draws[draws > 0][:200]
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 3)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Truncated("y", pm.Normal.dist(mu, sigma), lower=0.0, observed=y)
    return model


def zero_inflated_poisson() -> pm.Model:
    rng = _rng(17)
    y = np.where(rng.uniform(size=100) < 0.3, 0, rng.poisson(3.0, 100))
    with pm.Model() as model:
        psi = pm.Beta("psi", 2, 2)
        mu = pm.Gamma("mu", 2, 0.5)
        pm.ZeroInflatedPoisson("y", psi=psi, mu=mu, observed=y)
    return model


def lkj_mvnormal() -> pm.Model:
    rng = _rng(18)
    cov = np.array([[1.0, 0.6, 0.2], [0.6, 1.5, -0.3], [0.2, -0.3, 0.8]])
    y = rng.multivariate_normal(np.zeros(3), cov, size=80)
    with pm.Model(coords={"dim": ["a", "b", "c"]}) as model:
        chol, _, _ = pm.LKJCholeskyCov(
            "chol", n=3, eta=2.0, sd_dist=pm.Exponential.dist(1.0, shape=3), compute_corr=True
        )
        mu = pm.Normal("mu", 0, 2, dims="dim")
        pm.MvNormal("y", mu=mu, chol=chol, observed=y)
    return model


def ordered_logistic() -> pm.Model:
    rng = _rng(19)
    x = rng.normal(size=120)
    latent = 1.2 * x + rng.logistic(size=120)
    y = np.digitize(latent, [-1.0, 0.5, 1.5])
    with pm.Model() as model:
        b = pm.Normal("b", 0, 2)
        cut = pm.Normal(
            "cut", 0, 3, shape=3, transform=pm.distributions.transforms.ordered,
            initval=np.array([-1.0, 0.0, 1.0]),
        )  # fmt: skip
        pm.OrderedLogistic("y", eta=b * x, cutpoints=cut, observed=y)
    return model


def missing_observations() -> pm.Model:
    """The issue's crash: 90 observations with NaNs (automatic imputation)."""
    rng = _rng(20)
    y = rng.normal(2.0, 1.0, size=90)
    y[::9] = np.nan
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", mu, sigma, observed=y)
    return model


def spline_regression() -> pm.Model:
    from scipy.interpolate import BSpline

    rng = _rng(21)
    x = np.sort(rng.uniform(0, 10, size=80))
    y = np.sin(x) + rng.normal(scale=0.3, size=80)
    degree = 3
    knots = np.concatenate([[0] * degree, np.linspace(0, 10, 8), [10] * degree])
    basis = BSpline.design_matrix(x, knots, degree).toarray()
    with pm.Model() as model:
        w = pm.Normal("w", 0, 3, shape=basis.shape[1])
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", pt.dot(basis, w), sigma, observed=y)
    return model


def gamma_regression() -> pm.Model:
    rng = _rng(22)
    x = rng.uniform(0, 2, size=80)
    y = rng.gamma(4.0, np.exp(0.2 + 0.5 * x) / 4.0)
    with pm.Model() as model:
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 2)
        shape = pm.Gamma("shape", 2, 0.5)
        pm.Gamma("y", alpha=shape, beta=shape / pm.math.exp(a + b * x), observed=y)
    return model


def dirichlet_multinomial() -> pm.Model:
    rng = _rng(23)
    counts = rng.multinomial(30, [0.2, 0.5, 0.3], size=12)
    with pm.Model() as model:
        p = pm.Dirichlet("p", np.ones(3))
        pm.Multinomial("counts", n=30, p=p, observed=counts)
    return model


def survival_censored_exponential() -> pm.Model:
    rng = _rng(24)
    times = rng.exponential(5.0, size=80)
    observed = np.minimum(times, 8.0)
    with pm.Model() as model:
        lam = pm.Gamma("lam", 1, 1)
        pm.Censored("t", pm.Exponential.dist(lam), lower=None, upper=8.0, observed=observed)
    return model


def discrete_latent() -> pm.Model:
    rng = _rng(25)
    y = rng.normal(1.0, 1.0, size=30)
    with pm.Model() as model:
        switch = pm.Bernoulli("switch", 0.5)
        mu = pm.Normal("mu", 0, 3)
        pm.Normal("y", mu + switch, 1.0, observed=y)
    return model


@as_op(itypes=[pt.dscalar], otypes=[pt.dscalar])
def _doubled(value: np.ndarray) -> np.ndarray:
    return np.asarray(2.0 * value)


def as_op_model() -> pm.Model:
    rng = _rng(26)
    y = rng.normal(3.0, 1.0, size=40)
    with pm.Model() as model:
        half = pm.Normal("half", 0, 5)
        mu = pm.Deterministic("mu", _doubled(half))
        pm.Normal("y", mu, 1.0, observed=y)
    return model


def interpolated_prior() -> pm.Model:
    """100 points: more than nutpie lifts into data (``Interpolated`` reads them by value)."""
    rng = _rng(27)
    y = rng.normal(0.5, 1.0, size=40)
    grid = np.linspace(-4, 4, 100)
    density = np.exp(-0.5 * grid**2)
    with pm.Model() as model:
        mu = pm.Interpolated("mu", grid, density)
        pm.Normal("y", mu, 1.0, observed=y)
    return model


#: How PyTensor says an Op has no gradient (PyTensor 3 calls it a pullback).
NO_GRADIENT = "pullback not implemented" if PYTENSOR_MAJOR >= 3 else "grad not implemented"

#: PyTensor 2's JAX dispatch has no ``erfcx`` (in the normal's log-cdf: censoring, truncation).
NO_JAX_ERFCX: dict[str, str] = (
    {} if PYTENSOR_MAJOR >= 3 else {"numpyro": "No JAX implementation for Op erfcx"}
)

#: JAX differentiates a clip wrongly under XLA fusion (a GP's distances): on PyTensor 2 in any
#: program, on PyTensor 3 inside NUTS's step (cloudcache/backends/numpyro/gradient_hazards.py).
CLIP_GRADIENT: dict[str, str] = {"numpyro": "JAX gradient is wrong under XLA fusion"}

GALLERY: tuple[GalleryCase, ...] = (
    GalleryCase("linear_regression", linear_regression),
    GalleryCase("hierarchical_radon", hierarchical_radon),
    GalleryCase("eight_schools", eight_schools),
    GalleryCase("robust_regression", robust_regression),
    GalleryCase("logistic_regression", logistic_regression),
    GalleryCase("poisson_regression", poisson_regression),
    GalleryCase("poisson_mixture", poisson_mixture),
    GalleryCase("negative_binomial_mixture", negative_binomial_mixture),
    GalleryCase("normal_mixture", normal_mixture),
    GalleryCase("stick_breaking", stick_breaking),
    GalleryCase("gp_marginal", gp_marginal, handed_to_pymc=CLIP_GRADIENT),
    GalleryCase("hsgp", hsgp),
    GalleryCase("autoregressive", autoregressive),
    GalleryCase("random_walk_dims", random_walk_dims),
    GalleryCase("scan_ar1", scan_ar1),
    GalleryCase("censored_normal", censored_normal, handed_to_pymc=NO_JAX_ERFCX),
    GalleryCase("truncated_normal", truncated_normal, handed_to_pymc=NO_JAX_ERFCX),
    GalleryCase("zero_inflated_poisson", zero_inflated_poisson),
    GalleryCase("lkj_mvnormal", lkj_mvnormal),
    GalleryCase("ordered_logistic", ordered_logistic),
    GalleryCase("missing_observations", missing_observations),
    GalleryCase("spline_regression", spline_regression),
    GalleryCase("gamma_regression", gamma_regression),
    GalleryCase("dirichlet_multinomial", dirichlet_multinomial),
    GalleryCase("survival_censored_exponential", survival_censored_exponential),
    GalleryCase(
        "discrete_latent",
        discrete_latent,
        handed_to_pymc={"numpyro": "discrete", "nutpie": "discrete"},
    ),
    GalleryCase(
        "as_op_model",
        as_op_model,
        # No gradient at all: numpyro sees no JAX conversion, nutpie fails to differentiate it.
        handed_to_pymc={"numpyro": "as_op", "nutpie": NO_GRADIENT},
    ),
    # numpyro: a linear interpolation in JAX; nutpie: numba runs the SciPy spline in Python
    GalleryCase("interpolated_prior", interpolated_prior),
    # last: each case's seed is its position, so the other cases keep their draws
    GalleryCase("dirichlet_process", dirichlet_process),
)

#: Cases by name.
CASES: dict[str, GalleryCase] = {case.name: case for case in GALLERY}
