"""The NumPyro/JAX backend: real models, real JAX sampling, tiny draws, no mocks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jax
import numpy as np
import pymc as pm
import pymc.sampling.mcmc as mcmc
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from cloudcache.backends.numpyro import jax_cache
from cloudcache.backends.numpyro.backend import NumpyroBackend, chain_seeds
from cloudcache.backends.numpyro.logp import model_graph
from cloudcache.backends.numpyro.runner import KERNELS, KernelCache, prng_keys
from cloudcache.calls.request import normalize_sample_call
from cloudcache.errors import BackendRefused
from cloudcache.fingerprint.graph import graph_key
from cloudcache.prewarm import prewarm

REPO = Path(__file__).resolve().parents[1]
SMALL = {"draws": 60, "tune": 60, "chains": 2, "progressbar": False}


def regression_model(y_shift: float = 0.0, n: int = 40) -> pm.Model:
    """Linear regression whose covariate and observations are both ``pm.Data``."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=n)
    y = 1.0 + 2.0 * x + rng.normal(scale=0.5, size=n) + y_shift
    with pm.Model(coords={"obs": np.arange(n), "coef": ["a", "b"]}) as model:
        xd = pm.Data("x", x, dims="obs")
        yd = pm.Data("y_data", y, dims="obs")
        beta = pm.Normal("beta", 0.0, 10.0, dims="coef")
        sigma = pm.HalfNormal("sigma", 2.0)
        mu = beta[0] + beta[1] * xd
        pm.Deterministic("slope_x2", 2 * beta[1])
        pm.Normal("y", mu, sigma, observed=yd, dims="obs")
    return model


def run(model: pm.Model, device: str = "cpu", **kwargs) -> xr.DataTree:
    request = normalize_sample_call(mcmc.sample, (), {**SMALL, **kwargs, "model": model})
    return NumpyroBackend().sample(model, request, device=device, pymc_sample=mcmc.sample)


@contextmanager
def xla_compilations() -> Iterator[list[str]]:
    """Collect every XLA backend compilation JAX performs inside the block."""
    events: list[str] = []

    def listener(event: str, duration: float, **_: object) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(scope="module")
def model() -> pm.Model:
    return regression_model()


@pytest.fixture(scope="module")
def first_tree(model: pm.Model) -> xr.DataTree:
    return run(model, random_seed=11)


def posterior_array(tree: xr.DataTree, name: str) -> np.ndarray:
    return tree.posterior[name].values


# --- the DataTree -------------------------------------------------------------------------


def test_datatree_has_pymc_groups_and_variables(first_tree: xr.DataTree) -> None:
    assert {"posterior", "sample_stats", "observed_data", "constant_data"} <= set(
        first_tree.children
    )
    post = first_tree.posterior
    assert set(post.data_vars) == {"beta", "sigma", "slope_x2"}
    assert post["beta"].dims == ("chain", "draw", "coef")
    assert list(post["coef"].values) == ["a", "b"]
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 60
    np.testing.assert_allclose(post["slope_x2"], 2 * post["beta"].sel(coef="b"))
    assert float(post["sigma"].min()) > 0  # untransformed values, not log-space
    assert first_tree.observed_data["y"].dims == ("obs",)
    assert set(first_tree.constant_data.data_vars) == {"x"}  # observed containers: observed_data
    assert post.attrs["sampling_time"] > 0
    assert post.attrs["tuning_steps"] == 60
    assert post.attrs["inference_library"] == "numpyro"


def test_sample_stats_match_pymc_names_and_dtypes(first_tree: xr.DataTree) -> None:
    stats = first_tree.sample_stats
    expected = {"diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate"}
    assert expected | {"lp", "reached_max_treedepth"} == set(stats.data_vars)
    assert stats["diverging"].dtype == bool
    assert stats["tree_depth"].dtype == np.int64
    n_steps, depth = stats["n_steps"].values, stats["tree_depth"].values
    assert np.all(n_steps < 2**depth) and np.all(n_steps >= 2 ** (depth - 1))
    assert np.all((stats["acceptance_rate"] >= 0) & (stats["acceptance_rate"] <= 1))


def test_lp_is_the_model_log_density(model: pm.Model, first_tree: xr.DataTree) -> None:
    logp = model.compile_logp()
    post = first_tree.posterior.isel(chain=0, draw=5)
    point = {
        "beta": post["beta"].values,
        "sigma_log__": np.log(post["sigma"].values),
    }
    lp = float(first_tree.sample_stats["lp"].isel(chain=0, draw=5))
    np.testing.assert_allclose(lp, logp(point), rtol=1e-8)


# --- no recompilation ---------------------------------------------------------------------


def test_new_seed_runs_with_zero_compilation(model: pm.Model, first_tree: xr.DataTree) -> None:
    before = KERNELS.compilations
    with xla_compilations() as compiled:
        tree = run(model, random_seed=12)
    assert compiled == []
    assert KERNELS.compilations == before
    assert not np.array_equal(posterior_array(tree, "beta"), posterior_array(first_tree, "beta"))


def test_progress_bar_follows_the_run_without_recompiling(
    model: pm.Model, first_tree: xr.DataTree, capsys: pytest.CaptureFixture
) -> None:
    before = KERNELS.compilations
    run(model, random_seed=13, progressbar=True)
    shown = capsys.readouterr().out
    assert "Sampling 2 chains" in shown and "240/240" in shown  # 2 x (60 tune + 60 draws)
    assert KERNELS.compilations == before  # the bar does not change the executable
    run(model, random_seed=13, progressbar=True, quiet=True)
    assert "Sampling 2 chains" not in capsys.readouterr().out


def test_set_data_same_shape_runs_with_zero_compilation_and_uses_new_data(
    model: pm.Model, first_tree: xr.DataTree
) -> None:
    shifted = regression_model(y_shift=10.0)
    with xla_compilations() as compiled:
        tree = run(shifted, random_seed=11)
    assert compiled == []
    intercept_before = posterior_array(first_tree, "beta")[..., 0].mean()
    intercept_after = posterior_array(tree, "beta")[..., 0].mean()
    assert 9.0 < intercept_after - intercept_before < 11.0

    original = model["y_data"].get_value().copy()
    with model:
        pm.set_data({"y_data": original - 5.0})
    try:
        with xla_compilations() as compiled:
            tree = run(model, random_seed=11)
        assert compiled == []
        assert -6.0 < posterior_array(tree, "beta")[..., 0].mean() - intercept_before < -4.0
        np.testing.assert_allclose(tree.observed_data["y"], model["y_data"].get_value())
    finally:
        with model:
            pm.set_data({"y_data": original})


def test_new_data_shape_compiles_a_new_runner(first_tree: xr.DataTree) -> None:
    before = KERNELS.compilations
    tree = run(regression_model(n=41), random_seed=11)
    assert KERNELS.compilations > before
    assert tree.observed_data.sizes["obs"] == 41


def test_same_seed_is_reproducible_in_process(model: pm.Model, first_tree: xr.DataTree) -> None:
    again = run(model, random_seed=11)
    np.testing.assert_array_equal(
        posterior_array(again, "beta"), posterior_array(first_tree, "beta")
    )


def test_same_seed_is_reproducible_across_processes(first_tree: xr.DataTree) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, {tests!r})
        from test_numpyro_backend import regression_model, run
        tree = run(regression_model(), random_seed=11)
        print(json.dumps(tree.posterior["beta"].values.tolist()))
        """
    ).format(tests=str(REPO / "tests"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    other = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_array_equal(other, posterior_array(first_tree, "beta"))


def test_random_seed_forms(model: pm.Model, first_tree: xr.DataTree) -> None:
    assert len(set(chain_seeds(11, 2))) == 2
    by_generator = run(model, random_seed=np.random.default_rng(11))
    np.testing.assert_array_equal(
        posterior_array(by_generator, "beta"), posterior_array(first_tree, "beta")
    )
    by_list = [run(model, random_seed=[4, 5]) for _ in range(2)]
    np.testing.assert_array_equal(*(posterior_array(t, "beta") for t in by_list))
    unseeded = [posterior_array(run(model, random_seed=None), "beta") for _ in range(2)]
    assert not np.array_equal(*unseeded)


def test_prng_keys_match_jax() -> None:
    seeds = [0, 7, 2**30 - 1, 2**40 + 5]
    expected = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds])
    np.testing.assert_array_equal(prng_keys(seeds), expected)


# --- arguments honoured -------------------------------------------------------------------


def test_var_names_limits_the_posterior(model: pm.Model) -> None:
    tree = run(model, random_seed=1, var_names=["sigma"])
    assert set(tree.posterior.data_vars) == {"sigma"}


def test_max_treedepth_and_target_accept_reach_the_kernel(model: pm.Model) -> None:
    shallow = run(model, random_seed=1, nuts={"max_treedepth": 2})
    assert int(shallow.sample_stats["tree_depth"].max()) <= 2
    assert bool(shallow.sample_stats["reached_max_treedepth"].any())
    careful = run(model, random_seed=1, target_accept=0.99)
    loose = run(model, random_seed=1, target_accept=0.6)
    assert float(careful.sample_stats["step_size"].mean()) < float(
        loose.sample_stats["step_size"].mean()
    )


def test_initvals_without_jitter_start_there(model: pm.Model) -> None:
    from cloudcache.backends.numpyro.backend import prepare_run
    from cloudcache.backends.numpyro.plan import plan_request

    request = normalize_sample_call(
        mcmc.sample,
        (),
        {**SMALL, "model": model, "init": "adapt_diag", "initvals": {"beta": [3.0, -1.0]}},
    )
    prepared = prepare_run(model, plan_request(request), 1, "cpu")
    np.testing.assert_array_equal(prepared.init[0], [[3.0, -1.0], [3.0, -1.0]])


def test_idata_kwargs_coords_and_log_likelihood(model: pm.Model) -> None:
    tree = run(
        model,
        random_seed=1,
        idata_kwargs={"log_likelihood": True, "coords": {"coef": ["icpt", "slope"]}},
    )
    assert list(tree.posterior["coef"].values) == ["icpt", "slope"]
    assert tree.log_likelihood["y"].shape == (2, 60, 40)


def test_unknown_option_raises(model: pm.Model) -> None:
    with pytest.raises(TypeError, match="unknown NUTS option"):
        run(model, random_seed=1, nuts={"no_such_option": 1})


def test_gpu_request_without_gpu_fails_clearly(model: pm.Model) -> None:
    if any(d.platform != "cpu" for d in jax.devices()):
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="device='gpu' but JAX finds no GPU"):
        run(model, device="gpu", random_seed=1)


# --- handing calls to PyMC ----------------------------------------------------------------


def request_for(model: pm.Model, **kwargs):
    return normalize_sample_call(mcmc.sample, (), {**SMALL, **kwargs, "model": model})


def test_discrete_model_is_refused_and_sampled_by_pymc(tmp_path: Path) -> None:
    import cloudcache

    with pm.Model() as discrete:
        p = pm.Beta("p", 2.0, 2.0)
        pm.Bernoulli("flip", p)
    assert "discrete" in NumpyroBackend().refusal(discrete, request_for(discrete))
    with pytest.raises(BackendRefused, match="discrete"):
        run(discrete, random_seed=1, draws=20, tune=20, compute_convergence_checks=False)
    with cloudcache.cloud(discrete, cache=str(tmp_path), backend="numpyro", quiet=True) as run_:
        tree = pm.sample(random_seed=1, draws=20, tune=20, chains=1, progressbar=False)
    assert run_.last is not None and run_.last.backend == "pymc"
    assert "discrete" in run_.last.reason
    assert tree.posterior["flip"].dtype.kind == "i"
    assert tree.posterior.attrs.get("inference_library") != "numpyro"


def test_pymc_only_nuts_option_is_refused(model: pm.Model) -> None:
    reason = NumpyroBackend().refusal(model, request_for(model, nuts={"step_scale": 0.3}))
    assert reason is not None and "step_scale" in reason
    with pytest.raises(BackendRefused, match="step_scale"):
        run(model, random_seed=1, draws=20, tune=20, nuts={"step_scale": 0.3})


# --- warnings ----------------------------------------------------------------------------


def funnel() -> pm.Model:
    with pm.Model() as model:
        log_tau = pm.Normal("log_tau", 0.0, 3.0)
        pm.Normal("theta", 0.0, pm.math.exp(log_tau), shape=5)
    return model


def test_convergence_warnings_are_logged_unless_quiet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pymc"):
        tree = run(funnel(), random_seed=3, draws=100, tune=50)
    assert int(tree.sample_stats["diverging"].sum()) > 0
    assert "divergence" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pymc"):
        run(funnel(), random_seed=3, draws=100, tune=50, quiet=True)
        run(funnel(), random_seed=3, draws=100, tune=50, compute_convergence_checks=False)
    assert "divergence" not in caplog.text


def test_convergence_checks_run_once_the_entry_is_stored(tmp_path: Path) -> None:
    """Through ``cloud()`` PyMC's checks (seconds on long runs) come after the entry is written:
    a process killed while they run has its result stored. The warnings are still logged."""
    import cloudcache

    seen: list[list[Path]] = []

    class EntriesWhenWarned(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "divergence" in record.getMessage():
                seen.append(sorted(tmp_path.rglob("*.nc")))

    handler = EntriesWhenWarned()
    logging.getLogger("pymc").addHandler(handler)
    try:
        with cloudcache.cloud(funnel(), cache=str(tmp_path), backend="numpyro"):
            pm.sample(draws=100, tune=50, chains=2, random_seed=3, progressbar=False)
    finally:
        logging.getLogger("pymc").removeHandler(handler)
    assert seen and seen[0], "the divergence warning came before the entry was stored"


# --- compilation caches -------------------------------------------------------------------


def test_prewarm_compiles_and_later_sample_does_not() -> None:
    fresh = regression_model(n=37)
    result = prewarm(fresh, draws=60, tune=60, chains=2, device="cpu")
    assert result.compiled and result.fallback is None
    with xla_compilations() as compiled:
        run(fresh, random_seed=5)
    assert compiled == []
    assert not prewarm(fresh, draws=60, tune=60, chains=2, device="cpu").compiled


def test_persistent_cache_directory_is_used(first_tree: xr.DataTree) -> None:
    directory = jax_cache.cache_dir()
    assert directory is not None
    assert os.environ.get("CLOUDCACHE_JAX_CACHE_DIR") in (None, directory)
    assert any(Path(directory).iterdir())


def test_kernel_cache_is_bounded_lru() -> None:
    cache = KernelCache(max_entries=2)
    for key in ("a", "b", "a", "c"):
        cache.get_or_compile(key, lambda key=key: key.upper())
    assert cache.compilations == 3 and cache.hits == 1
    assert len(cache) == 2
    cache.get_or_compile("b", lambda: "B2")  # evicted as least recently used
    assert cache.compilations == 4


def test_graph_key_ignores_data_values_not_structure() -> None:
    def key_of(model: pm.Model) -> tuple:
        graph = model_graph(model)
        return graph.key.digest, graph.data_signature()

    assert key_of(regression_model()) == key_of(regression_model(y_shift=3.0))
    assert key_of(regression_model()) != key_of(regression_model(n=41))
    with pm.Model() as a:
        pm.Normal("z", 0.0, 1.0)
    with pm.Model() as b:
        pm.Normal("z", 0.0, 2.0)
    assert key_of(a) != key_of(b)
    assert graph_key(a.value_vars, [a.logp()]) != graph_key(b.value_vars, [b.logp()])


# --- end to end ---------------------------------------------------------------------------


def test_cloud_block_samples_misses_with_the_numpyro_runner(tmp_path: Path) -> None:
    import cloudcache

    model = regression_model()
    with cloudcache.cloud(model, cache=str(tmp_path), backend="numpyro", device="cpu") as run_:
        first = pm.sample(random_seed=21, **SMALL)
        miss = run_.last
        second = pm.sample(random_seed=21, **SMALL)
    assert miss is not None and not miss.hit
    assert run_.last is not None and run_.last.hit
    assert first.posterior.attrs["inference_library"] == "numpyro"
    assert first.posterior.attrs["cloudcache_backend"] == "numpyro"
    np.testing.assert_array_equal(second.posterior["beta"], first.posterior["beta"])


# --- the runner samples exactly what PyMC samples (issue 15) ------------------------------


def poisson_mixture(n: int = 80) -> pm.Model:
    rng = np.random.default_rng(6)
    y = np.concatenate([rng.poisson(1.9, n // 2), rng.poisson(8.0, n - n // 2)])
    with pm.Model() as model:
        lam = pm.Gamma("lam", 2.0, 0.4, shape=2)
        pm.Mixture(
            "y", w=pm.Dirichlet("w", np.ones(2)), comp_dists=pm.Poisson.dist(lam), observed=y
        )
    return model


def logp_and_gradient(graph, values, data):
    logp_fn, _ = graph.jax_functions()
    return jax.jit(jax.value_and_grad(logp_fn))(values, data)


def test_mixture_gradient_with_data_as_arguments_is_finite_and_exact() -> None:
    """Root cause: JAX's max gradient divides by a tie count XLA could make 0 (NaN)."""
    model = poisson_mixture()
    lifted = model_graph(model)
    constant = model_graph(model, lift=False)
    assert lifted.lifted and not constant.lifted  # the 80 counts are a runtime argument
    point = model.initial_point()
    values = tuple(np.asarray(point[v.name]) for v in lifted.value_vars)
    lp_a, grad_a = logp_and_gradient(lifted, values, tuple(lifted.data_values()))
    lp_b, grad_b = logp_and_gradient(constant, values, ())
    flat_a = np.concatenate([np.ravel(g) for g in grad_a])
    flat_b = np.concatenate([np.ravel(g) for g in grad_b])
    assert np.all(np.isfinite(flat_a))
    np.testing.assert_allclose(lp_a, lp_b, rtol=1e-10)
    np.testing.assert_allclose(flat_a, flat_b, rtol=1e-8, atol=1e-10)


def test_mixture_posterior_matches_pymc() -> None:
    model = poisson_mixture()
    tree = run(model, random_seed=4, draws=200, tune=200, compute_convergence_checks=False)
    stats = tree.sample_stats
    assert float(stats["diverging"].mean()) < 0.1
    assert float(stats["step_size"].min()) > 1e-3
    reference = pm.sample(
        model=model, nuts_sampler="pymc", random_seed=4, draws=200, tune=200, chains=2,
        progressbar=False, compute_convergence_checks=False,
    )  # fmt: skip
    for name in ("lam", "w"):
        got = np.sort(tree.posterior[name].mean(("chain", "draw")).values)
        want = np.sort(reference.posterior[name].mean(("chain", "draw")).values)
        sd = reference.posterior[name].std(("chain", "draw")).values
        np.testing.assert_array_less(np.abs(got - want), 0.5 * np.max(sd) + 0.05)


def test_gp_clip_gradient_is_refused() -> None:
    """Root cause: under XLA fusion JAX differentiates a GP's clip wrongly (PyTensor 2 in any
    program; PyTensor 3 inside NUTS's step program, where the gradient program of its own is
    exact: checked here too, and why it was not refused before)."""
    from gallery_models import gp_marginal

    from cloudcache.backends.numpyro.gradient_hazards import CLIP_GRADIENT_REASON
    from cloudcache.backends.numpyro.logp import ModelGraph
    from cloudcache.compat.pytensor import PYTENSOR_MAJOR
    from cloudcache.fingerprint.graph import GraphKey

    model = gp_marginal()
    with pytest.raises(BackendRefused, match="JAX gradient is wrong under XLA fusion"):
        run(model, random_seed=1, draws=20, tune=20)
    assert NumpyroBackend().refusal(model, request_for(model)) == CLIP_GRADIENT_REASON
    if PYTENSOR_MAJOR < 3:
        return
    # the log density's JAX function as model_graph would build it, past the refusal
    graph = ModelGraph(tuple(model.value_vars), (), (), model.logp(), (), (), GraphKey("gp"))
    dlogp = model.compile_dlogp()
    rng = np.random.default_rng(0)
    for _ in range(8):
        point = {k: v + rng.normal(size=np.shape(v)) for k, v in model.initial_point().items()}
        values = tuple(np.asarray(point[v.name]) for v in graph.value_vars)
        _, gradient = logp_and_gradient(graph, values, ())
        got = np.concatenate([np.ravel(g) for g in gradient])
        np.testing.assert_allclose(got, dlogp(point), rtol=1e-8, atol=1e-8)


def test_shape_mask_and_length_inputs_stay_constants() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=90)
    y[::9] = np.nan
    with pm.Model(coords={"time": np.arange(90)}) as model:
        sigma = pm.HalfNormal("sigma", 1.0)
        walk = pm.GaussianRandomWalk("walk", sigma=sigma, init_dist=pm.Normal.dist(), dims="time")
        pm.Normal("y", walk, 0.5, observed=y, dims="time")
    graph = model_graph(model)
    lifted = [np.asarray(v) for v in graph.data_values()]
    assert lifted and all(np.all(np.isfinite(v)) and v.size == 80 for v in lifted)  # y's values
    tree = run(model, random_seed=3, draws=30, tune=30, compute_convergence_checks=False)
    assert tree.posterior["walk"].shape == (2, 30, 90)
    assert tree.posterior["y_unobserved"].shape == (2, 30, 10)


def grouped_model(groups: list[int]) -> pm.Model:
    """Three group means; ``groups`` (``pm.Data``) picks each observation's group: an index
    set, so the runner keeps it a constant of the compiled graph."""
    with pm.Model() as model:
        group = pm.Data("group", np.array(groups))
        mu = pm.Normal("mu", 0.0, 5.0, shape=3)
        pm.Normal("y", mu[group], 1.0, observed=np.array([-3.0, -2.5, 0.1, 0.2, 4.0, 3.5]))
    return model


def test_a_model_keeps_its_graph_until_it_is_edited() -> None:
    model = grouped_model([0, 0, 1, 1, 2, 2])
    graph = model_graph(model)
    assert model_graph(model) is graph  # unchanged: the graph is not built again
    assert model_graph(model, lift=False) is not graph
    options = {"random_seed": 5, "compute_convergence_checks": False}
    first = run(model, **options)
    with model:
        pm.set_data({"group": np.array([2, 2, 1, 1, 0, 0])})
    assert model_graph(model) is not graph
    edited = run(model, **options)
    fresh = run(grouped_model([2, 2, 1, 1, 0, 0]), **options)
    np.testing.assert_array_equal(edited.posterior["mu"].values, fresh.posterior["mu"].values)
    assert not np.array_equal(edited.posterior["mu"].values, first.posterior["mu"].values)


def test_gather_max_matches_max_and_keeps_nan() -> None:
    from pytensor.compile import mode
    from pytensor.graph.fg import FunctionGraph
    from pytensor.link.jax.dispatch import jax_funcify

    from cloudcache.backends.numpyro.stable_ops import stabilise_reductions

    x = pt.dmatrix("x")
    outputs = [pt.max(x, axis=1), pt.min(x, axis=0), pt.max(x), pt.logsumexp(x, axis=1)]
    stock = pytensor.function([x], outputs, mode="JAX")
    fgraph = FunctionGraph([x], outputs, clone=True)
    # As the runner does: JAX's rewrites first (PyTensor 2 spells logsumexp out in max, exp,
    # sum and log, and its rewrites change that arithmetic), then the gather reductions.
    mode.JAX.optimizer.rewrite(fgraph)
    stabilise_reductions(fgraph)
    gathered = jax_funcify(fgraph)
    value = np.array([[1.0, 3.0, 2.0], [-np.inf, np.nan, 0.5]])
    for a, b in zip(gathered(value), stock(value), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


class Halve(Op):
    """A user Op with only a Python ``perform`` (no JAX conversion)."""

    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.asarray(inputs[0] / 2.0)

    def grad(self, inputs, output_grads):
        return [output_grads[0] / 2.0]


def halving_model() -> pm.Model:
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        pm.Normal("y", Halve()(mu), 1.0, observed=np.array([0.5, 1.5, 1.0]))
    return model


def test_op_without_jax_conversion_is_sampled_by_pymc_and_keyed_so(tmp_path: Path) -> None:
    import cloudcache

    model = halving_model()
    assert NumpyroBackend().refusal(model, request_for(model)) is None  # found at prepare time
    kwargs = {"random_seed": 2, "draws": 30, "tune": 30, "chains": 1, "progressbar": False}
    with cloudcache.cloud(model, cache=str(tmp_path), backend="numpyro", quiet=True) as run_:
        pm.sample(**kwargs)
    miss = run_.last
    assert miss is not None and miss.backend == "pymc" and not miss.hit
    assert "No JAX conversion" in miss.reason and "Halve" in miss.reason
    assert "Halve" in NumpyroBackend().refusal(model, request_for(model))  # now before the key
    with cloudcache.cloud(model, cache=str(tmp_path), backend="numpyro", quiet=True) as again:
        pm.sample(**kwargs)  # refused before the key now: no second attempt at a JAX function
    assert again.last is not None and again.last.hit and again.last.backend == "pymc"
    assert again.last.reason == miss.reason and again.last.key == miss.key
    # The entry is keyed exactly as PyMC's sampler keys the same call: a hit for backend="pymc".
    with cloudcache.cloud(halving_model(), cache=str(tmp_path), backend="pymc", quiet=True) as r:
        pm.sample(**kwargs)
    assert r.last is not None and r.last.hit and r.last.key == miss.key


def test_as_op_is_refused_before_the_key_without_jax() -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, pymc as pm, pytensor.tensor as pt
        from pytensor.compile.ops import as_op
        from cloudcache.backends.registry import resolve_backend
        from cloudcache.calls.request import normalize_sample_call
        import pymc.sampling.mcmc as mcmc

        @as_op(itypes=[pt.dscalar], otypes=[pt.dscalar])
        def doubled(v):
            return np.asarray(2 * v)

        with pm.Model() as m:
            half = pm.Normal("half", 0, 5)
            pm.Normal("y", doubled(half), 1.0, observed=np.ones(3))
        request = normalize_sample_call(mcmc.sample, (), {"model": m})
        resolution = resolve_backend("numpyro", m, request)
        print(resolution.backend_id, "|", resolution.reason, "|", "jax" in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = (
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    backend, reason, jax_imported = (part.strip() for part in out.split("|"))
    assert backend == "pymc" and "as_op" in reason and "doubled" in reason
    assert jax_imported == "False"


def test_nonfinite_gradient_at_the_start_is_an_error_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    import cloudcache
    from cloudcache.errors import SamplerFailure

    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0, initval=0.0)
        pm.Potential("kink", pt.sqrt(pt.abs(x)))  # the gradient is not finite at x = 0
    kwargs = {"init": "adapt_diag", "draws": 20, "tune": 20, "chains": 1, "progressbar": False}
    with (
        cloudcache.cloud(model, cache=str(tmp_path), backend="numpyro", quiet=True),
        pytest.raises(SamplerFailure, match="gradient is not finite"),
    ):
        pm.sample(random_seed=1, **kwargs)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".nc"]


def test_failure_symptoms() -> None:
    from cloudcache.backends.numpyro.run_checks import failure_symptom, program_disagreement

    healthy = {
        "step_size": np.full((2, 50), 0.4),
        "lp": np.random.default_rng(0).normal(size=(2, 50)),
        "diverging": np.zeros((2, 50), bool),
    }
    assert failure_symptom(healthy, 50) is None
    some = {**healthy, "diverging": np.arange(100).reshape(2, 50) % 7 == 0}
    assert failure_symptom(some, 50) is None  # some divergences are a valid result
    collapsed = {**healthy, "step_size": np.full((2, 50), 1e-196)}
    assert "collapsed" in failure_symptom(collapsed, 50)
    all_divergent = {**healthy, "diverging": np.ones((2, 50), bool)}
    assert "every draw of chain 0 diverged" in failure_symptom(all_divergent, 50)
    stuck = {**healthy, "lp": np.ones((2, 50))}
    assert "never moved" in failure_symptom(stuck, 50)
    same = [(1.0, [np.array([1.0, 2.0])])]
    assert program_disagreement(same, same) is None
    assert "gradient" in program_disagreement(same, [(1.0, [np.array([1.0, np.nan])])])


def test_start_point_check_passed_in_an_earlier_process_is_not_repeated() -> None:
    """A passed check leaves a marker by JAX's cache; a new process finds it and skips the check.

    ``forget_all()`` stands for a new process (what this process remembers is dropped); the
    check, when it runs and passes, touches the marker, so an unchanged mtime proves it was
    skipped.
    """
    from cloudcache.backends.numpyro import checked_programs

    directory = jax_cache.enable_persistent_cache()  # as the first run would (also run alone)
    assert directory is not None
    markers = Path(directory) / checked_programs.MARKERS
    shutil.rmtree(markers, ignore_errors=True)  # markers of earlier test runs
    checked_programs.forget_all()
    run(regression_model(n=43), random_seed=1)  # a structure no other test samples
    (marker,) = markers.glob("*")
    model = regression_model(n=43)
    os.utime(marker, (0, 0))
    checked_programs.forget_all()
    run(model, random_seed=2)
    assert marker.stat().st_mtime == 0  # found on disk: the check did not run
    marker.unlink()
    checked_programs.forget_all()
    run(model, random_seed=3)
    assert marker.is_file() and marker.stat().st_mtime > 0  # no marker: checked again
