"""The backend chain never crashes where PyMC would not (issue 20.3), and the NumPyro log
density is PyMC's where a distribution's parameter check fails (issue 20.4).

Real models throughout: a model whose two shared variables share a name (nutpie's
``with_data`` raised), a start no sampler can leave (PyMC's own error reaches the user after
every backend failed), a GPU asked for where JAX has none (a failure PyMC's sampler does not
have: PyMC samples), a truncated stick-breaking mixture (the parameter check of its weights)
and ``pm.Interpolated`` on NumPyro and nutpie.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.exceptions import SamplingError

import cloudcache
from cloudcache.backends.choose import nutpie_persists
from cloudcache.backends.nutpie.plan import missing_library
from cloudcache.backends.registry import LAZY_BACKENDS, get_backend, resolve_backend
from cloudcache.calls.request import normalize_sample_call
from cloudcache.compat.pymc import as_tree

TINY = {"draws": 100, "tune": 100, "chains": 2, "progressbar": False}
QUIET = {**TINY, "compute_convergence_checks": False}

needs_nutpie = pytest.mark.skipif(missing_library() is not None, reason="nutpie not installed")


def shared_names_model(offset: float) -> pm.Model:
    """``y ~ N(a * w1 + w2, 1)`` with ``a ~ N(0, 1)``: both data are shared variables named w."""
    w1 = pytensor.shared(np.array([1.0, 2.0, 3.0]), name="w")
    w2 = pytensor.shared(np.array(offset), name="w")
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 1.0)
        pm.Normal("y", a * w1 + w2, 1.0, observed=np.array([1.5, 2.5, 3.5]))
    return model


def conjugate_mean(offset: float) -> float:
    w1, y = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5])
    return float(np.sum(w1 * (y - offset)) / (1.0 + np.sum(w1**2)))


@needs_nutpie
def test_warmup_draws_with_two_shared_variables_of_one_name(tmp_path: Path) -> None:
    """The issue's crash: ``discard_tuned_samples=False`` sends auto from NumPyro to nutpie,
    whose compiled-model reuse called ``with_data(w=...)``. nutpie 0.16.11 samples it now, keyed
    by the values it cannot be fed, so other values of those variables compile again; nutpie
    0.16.8 fails to compile it, and the call falls to PyMC's sampler."""
    for offset in (0.5, 3.0):
        with cloudcache.cloud(shared_names_model(offset), cache=str(tmp_path), quiet=True) as run:
            tree = as_tree(pm.sample(random_seed=1, discard_tuned_samples=False, **QUIET))
            again = as_tree(pm.sample(random_seed=1, discard_tuned_samples=False, **QUIET))
        first, second = run.records
        if first.backend == "pymc":  # nutpie 0.16.8 refuses such a model when it compiles it
            assert "nutpie cannot sample this: it failed (ValueError: Shared" in first.reason
        else:
            assert first.backend == "nutpie"
            if nutpie_persists():  # auto tries nutpie first on a CPU
                assert first.metadata["choice"].startswith("auto -> nutpie (CPU")
            else:  # auto tries numpyro first, which keeps no warm-up draws
                assert "discard_tuned_samples" in first.metadata["choice"]
        assert second.hit and second.key == first.key
        a = tree.posterior["a"].values
        se = a.std() / np.sqrt(a.size / 4)  # generous: ~4 draws per independent one
        assert abs(a.mean() - conjugate_mean(offset)) < 5 * se, (offset, a.mean())
        np.testing.assert_array_equal(again.posterior["a"].values, a)


@needs_nutpie
def test_a_failure_every_backend_has_reaches_the_user_as_pymcs_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No jittered start has a finite log density: the first backend of auto's order fails,
    then the second, then PyMC's sampler raises its own ``SamplingError``; each hand-over is
    announced in one line."""
    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Potential("wall", pt.switch(x > 5.0, 0.0, -np.inf))
    with (
        caplog.at_level(logging.INFO, logger="cloudcache"),
        cloudcache.cloud(model, cache=str(tmp_path)),
        pytest.raises(SamplingError, match="Initial evaluation"),
    ):
        pm.sample(random_seed=1, **QUIET)
    lines = [r.getMessage() for r in caplog.records if r.name == "cloudcache"]
    misses = [line for line in lines if line.startswith("miss ")]
    assert len(misses) == 3, lines
    error = {"numpyro": "SamplingError", "nutpie": "RuntimeError"}
    first, second = ("nutpie", "numpyro") if nutpie_persists() else ("numpyro", "nutpie")
    said = f"auto -> {second} ({first} cannot sample this: it failed ({error[first]}"
    assert said in misses[1]
    assert "with pymc" in misses[2]
    note = f"sampling with PyMC's sampler: {second} cannot sample this: it failed ({error[second]}"
    assert any(line.startswith(note) for line in lines), lines
    assert all("\n" not in line for line in lines)
    assert not list(tmp_path.rglob("*.nc"))


def test_a_failure_pymc_does_not_have_falls_back_and_is_remembered(tmp_path: Path) -> None:
    """``device="gpu"`` where JAX has no GPU: the numpyro backend fails before any draw, PyMC's
    sampler (which has no device setting) samples; the next call skips numpyro before its key
    and hits."""
    import jax

    if any(d.platform != "cpu" for d in jax.devices()):
        pytest.skip("a GPU is present")
    model = shared_names_model(0.5)
    with cloudcache.cloud(
        model, cache=str(tmp_path), backend="numpyro", device="gpu", quiet=True
    ) as run:
        pm.sample(random_seed=2, **QUIET)
        pm.sample(random_seed=2, **QUIET)
    first, second = run.records
    assert first.backend == "pymc" and not first.hit
    assert "numpyro cannot sample this: it failed (RuntimeError: device='gpu'" in first.reason
    assert second.backend == "pymc" and second.hit and second.key == first.key


def test_the_key_holds_what_the_real_backend_names() -> None:
    """The lazy stand-in reports the real backend's versions, the runner's revision included."""
    from cloudcache.backends.numpyro.plan import RUNNER_REVISION

    versions = LAZY_BACKENDS["numpyro"].library_versions()
    assert versions["cloudcache-numpyro-runner"] == f"{RUNNER_REVISION}.0"
    assert RUNNER_REVISION >= 3  # parameter checks enter the log density from revision 3
    model = shared_names_model(0.5)
    request = normalize_sample_call(pm.sample, (), {**QUIET, "model": model})
    resolution = resolve_backend("numpyro", model, request, "cpu")
    assert resolution.backend.library_versions() == versions
    assert resolution.fallbacks == ("pymc",)
    assert get_backend("nutpie").library_versions().keys() >= {"nutpie", "numba"}


def truncated_stick_breaking(check_bounds: bool = True) -> pm.Model:
    """A truncated Dirichlet process: the weights sum to one only when the last stick is short,
    which the mixture's parameter check (``isclose(sum(w), 1)``) demands."""
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(-3, 1, 30), rng.normal(3, 1, 30)])
    with pm.Model(check_bounds=check_bounds) as model:
        alpha = pm.Gamma("alpha", 2.0, 2.0)
        beta = pm.Beta("beta", 1.0, alpha, shape=4)
        w = beta * pt.concatenate([[1.0], pt.extra_ops.cumprod(1 - beta)[:-1]])
        mu = pm.Normal("mu", 0.0, 5.0, shape=4)
        pm.NormalMixture("y", w=w, mu=mu, sigma=1.0, observed=y)
    return model


@pytest.mark.parametrize("check_bounds", [True, False])
def test_a_failed_parameter_check_is_minus_infinity_as_in_pymc(check_bounds: bool) -> None:
    from cloudcache.backends.numpyro.logp import model_graph

    model = truncated_stick_breaking(check_bounds)
    graph = model_graph(model)
    logp_fn, _ = graph.jax_functions()
    pymc_logp = model.compile_logp()
    names = [v.name for v in graph.value_vars]
    rng = np.random.default_rng(1)
    finite = 0
    for spread in (0.5, 2.0, 8.0):
        for _ in range(10):
            point = {n: rng.normal(scale=spread, size=np.shape(v)) for n, v in
                     model.initial_point().items()}  # fmt: skip
            want = float(pymc_logp(point))
            got = float(logp_fn(tuple(point[n] for n in names), tuple(graph.data_values())))
            finite += np.isfinite(want)
            if np.isfinite(want):
                assert got == pytest.approx(want, rel=1e-9)
            else:
                assert got == want == -np.inf
    assert 0 < finite < 30 if check_bounds else finite == 30


def interpolated_data(points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(27)
    grid = np.linspace(-4, 4, points)
    density = np.exp(-0.5 * grid**2) * (1 + 0.3 * rng.uniform(size=points))
    return grid, density, rng.normal(0.5, 1.0, size=40)


def interpolated_model(points: int) -> pm.Model:
    grid, density, y = interpolated_data(points)
    with pm.Model() as model:
        mu = pm.Interpolated("mu", grid, density)
        pm.Normal("y", mu, 1.0, observed=y)
    return model


def interpolated_posterior(points: int) -> tuple[float, float]:
    """The exact posterior mean and sd of ``mu`` (quadrature on a fine grid)."""
    grid, density, y = interpolated_data(points)
    fine = np.linspace(grid[0], grid[-1], 200_001)
    log_post = np.log(np.interp(fine, grid, density)) - 0.5 * ((y[:, None] - fine) ** 2).sum(0)
    weights = np.exp(log_post - log_post.max())
    weights /= weights.sum()
    mean = float(np.sum(weights * fine))
    return mean, float(np.sqrt(np.sum(weights * (fine - mean) ** 2)))


def test_interpolated_log_density_and_gradient_are_pymcs_on_numpyro() -> None:
    import jax

    from cloudcache.backends.numpyro.logp import model_graph

    model = interpolated_model(200)
    graph = model_graph(model)
    logp_fn, _ = graph.jax_functions()
    value_and_grad = jax.jit(jax.value_and_grad(lambda v, d: logp_fn((v,), d)))
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    data = tuple(graph.data_values())
    for u in np.linspace(-9.0, 9.0, 301):
        point = {"mu_interval__": np.float64(u)}
        got, gradient = value_and_grad(np.float64(u), data)
        assert float(got) == pytest.approx(float(logp(point)), rel=1e-12, abs=1e-12)
        assert float(gradient) == pytest.approx(float(dlogp(point)[0]), rel=1e-9, abs=1e-12)


def test_a_spline_that_is_not_linear_is_left_for_a_refusal() -> None:
    from scipy import interpolate

    from cloudcache.backends.numpyro.splines import linear_knots

    x = np.linspace(0.0, 1.0, 30)
    y = np.sin(3 * x) + 1.5
    assert linear_knots(interpolate.InterpolatedUnivariateSpline(x, y, k=1, ext="zeros"))
    assert linear_knots(interpolate.InterpolatedUnivariateSpline(x, y, k=3, ext="zeros")) is None
    assert linear_knots(interpolate.InterpolatedUnivariateSpline(x, y, k=1)) is None  # extrapolates


@pytest.mark.parametrize("backend", ["numpyro", pytest.param("nutpie", marks=needs_nutpie)])
def test_interpolated_prior_samples_and_caches(backend: str, tmp_path: Path) -> None:
    """200 points: more than nutpie lifts into data (its log density read ``.data`` of them)."""
    with cloudcache.cloud(
        interpolated_model(200), cache=str(tmp_path), backend=backend, quiet=True
    ) as run:
        tree = as_tree(pm.sample(random_seed=3, **QUIET))
        pm.sample(random_seed=3, **QUIET)
    first, second = run.records
    assert first.backend == backend and first.reason == "" and second.hit
    mean, sd = interpolated_posterior(200)
    draws = tree.posterior["mu"].values
    assert abs(draws.mean() - mean) < 0.5 * sd  # 200 draws: ~4 standard errors
    assert 0.7 < draws.std() / sd < 1.4
