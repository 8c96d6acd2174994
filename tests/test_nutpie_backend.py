"""The nutpie backend and ``backend="auto"``, on real models with real samplers (tiny draws).

Every sampling test shares one model structure (:func:`regression`), so the file compiles it
with numba once for our backend and once more for PyMC's own nutpie path (the parity reference).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pymc as pm
import pymc.sampling.mcmc as mcmc
import pytest
import xarray as xr
from tiny_models import TINY, tiny_model

import cloudcache
from cloudcache.backends.choose import (
    auto_choice,
    nutpie_persists,
    observation_count,
    short_count,
)
from cloudcache.backends.nutpie.backend import NutpieBackend
from cloudcache.backends.nutpie.compiled import COMPILED
from cloudcache.backends.registry import resolve_backend
from cloudcache.calls.request import normalize_sample_call
from cloudcache.compat.pymc import as_tree
from cloudcache.demo.models import radon_model, varying_slopes_model
from cloudcache.stores.files import FileStore

pytest.importorskip("nutpie")

#: What ``backend="auto"`` picks on a CPU for a small model: nutpie where its compiled models
#: persist across processes (PyTensor's numba cache, nutpie >= 0.16.11), else NumPyro.
AUTO_SMALL = "nutpie" if nutpie_persists() else "numpyro"


def regression(shift: float = 0.0) -> pm.Model:
    """80 observations: ``x`` is ``pm.Data``, ``y`` a plain NumPy array (lifted to data)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=80)
    y = 0.5 + 1.5 * x + rng.normal(size=80) + shift
    with pm.Model(name="reg", coords={"obs": np.arange(80)}) as model:
        xd = pm.Data("x", x, dims="obs")
        a = pm.Normal("a", 0.0, 10.0)
        b = pm.Normal("b", 0.0, 2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", a + b * xd, sigma, observed=y, dims="obs")
    return model


def request_for(model: pm.Model, **kwargs: object):
    return normalize_sample_call(mcmc.sample, (), {**TINY, **kwargs, "model": model})


def sample_with(backend: str, model: pm.Model | None = None, **kwargs: object):
    model = regression() if model is None else model
    with cloudcache.cloud(model, cache=False, backend=backend, quiet=True) as run:
        tree = pm.sample(**{**TINY, **kwargs})
    return tree, run.last


def describe(result: object) -> dict[str, object]:
    """Groups -> variables -> (dims, dtype kind), plus every coordinate's values."""
    tree = as_tree(result)  # PyMC 5 returns InferenceData
    return {
        group: {
            "vars": {
                name: (var.dims, var.dtype.kind) for name, var in tree[group].data_vars.items()
            },
            "coords": {name: list(np.asarray(c)) for name, c in tree[group].coords.items()},
        }
        for group in tree.children
    }


def test_nutpie_backend_matches_pymc_nutpie_in_shape_and_posterior():
    ours, record = sample_with("nutpie")
    reference = pm.sample(**TINY, nuts_sampler="nutpie", model=regression())
    assert record.backend == "nutpie" and not record.reason
    assert describe(ours) == describe(reference)
    assert set(ours.posterior.attrs) == set(reference.posterior.attrs)
    # Our compiled graph reads the observations as data, so the draws differ in the last bits
    # from PyMC's (constants folded): compare the posteriors, not the draws.
    ours_b, reference_b = (float(t.posterior["reg::b"].mean()) for t in (ours, reference))
    assert abs(ours_b - reference_b) < 0.15


def test_new_seed_new_data_and_rebuilt_models_reuse_the_compiled_model():
    first, _ = sample_with("nutpie")
    compiled = COMPILED.compilations
    sample_with("nutpie", random_seed=2)
    rebuilt, _ = sample_with("nutpie")  # a new model object built from the same code
    xr.testing.assert_equal(rebuilt.posterior, first.posterior)
    shifted, _ = sample_with("nutpie", model=regression(shift=5.0))  # new NumPy observations

    model = regression()
    with model:
        pm.set_data({"x": 10.0 * model["reg::x"].get_value()})
    scaled, _ = sample_with("nutpie", model=model)
    assert COMPILED.compilations == compiled  # zero recompilation for all five calls
    # ... and the new data really reached the sampler:
    intercept, shifted_intercept = (float(t.posterior["reg::a"].mean()) for t in (first, shifted))
    assert 4.0 < shifted_intercept - intercept < 6.0
    slope, scaled_slope = (float(t.posterior["reg::b"].mean()) for t in (first, scaled))
    assert abs(scaled_slope) < abs(slope) / 3


def test_target_accept_and_max_treedepth_reach_nutpie():
    tree, _ = sample_with("nutpie", target_accept=0.93, max_treedepth=4)
    if "inference_library_settings" in tree.sample_stats.attrs:
        settings = json.loads(tree.sample_stats.attrs["inference_library_settings"])
        text = json.dumps(settings)
        assert '"target_accept": 0.93' in text and '"maxdepth": 4' in text
    else:  # nutpie 0.16.8 (PyMC 5) records no settings: a lower target adapts a larger step
        loose, _ = sample_with("nutpie", target_accept=0.6, max_treedepth=4)
        final = {
            name: float(t.sample_stats["step_size"].isel(draw=-1).mean())
            for name, t in (("tight", tree), ("loose", loose))
        }
        assert final["tight"] < final["loose"]
    assert int(tree.sample_stats["depth"].max()) <= 4


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"init": "adapt_diag"}, "`init='adapt_diag'` is an initialisation of PyMC's own sampler"),
        ({"initvals": [{"tiny::a": 0.0}]}, "nutpie takes one `initvals` dict"),
        ({"step_scale": 0.3}, "NUTS option(s) step_scale are not nutpie settings"),
        ({"idata_kwargs": {"log_likelihood": True}}, "idata_kwargs log_likelihood"),
        ({"jitter_max_retries": 3}, "`jitter_max_retries=`"),
        ({"keep_warning_stat": True}, "`keep_warning_stat=True`"),
    ],
)
def test_refusals_name_the_setting(kwargs, reason):
    model = tiny_model()
    refusal = NutpieBackend().refusal(model, request_for(model, **kwargs))
    assert refusal is not None and reason in refusal
    assert "\n" not in refusal


def test_discrete_model_is_refused():
    with pm.Model() as model:
        pm.Poisson("k", 3.0)
    assert "discrete free variables" in NutpieBackend().refusal(model, request_for(model))


def test_refused_call_runs_on_pymc_with_the_reason_recorded():
    _, record = sample_with("nutpie", init="adapt_diag")
    assert record.backend == "pymc"
    assert record.reason.startswith("nutpie cannot sample this: `init='adapt_diag'`")


def test_gpu_device_hands_nutpie_calls_to_pymc():
    model = tiny_model()
    with cloudcache.cloud(model, cache=False, backend="nutpie", device="gpu", quiet=True) as run:
        pm.sample(**TINY)
    assert run.last.backend == "pymc"
    assert run.last.reason == "nutpie cannot sample this: nutpie runs on the CPU only"


def test_auto_picks_nutpie_for_radon_where_it_persists_and_for_1e5_observations():
    radon = radon_model()
    small = resolve_backend("auto", radon, request_for(radon), "cpu")
    assert small.backend_id == AUTO_SMALL
    assert small.choice == f"auto -> {AUTO_SMALL} (CPU, 919 observations)"

    large = varying_slopes_model(100_000)
    assert observation_count(large) == 100_000
    big = resolve_backend("auto", large, request_for(large), "cpu")
    assert big.backend_id == "nutpie"
    assert big.choice == "auto -> nutpie (CPU, 1.0e5 observations)"


def test_auto_on_a_gpu_picks_numpyro_for_any_size():
    large = varying_slopes_model(100_000)
    assert auto_choice(large, "gpu").order == ("numpyro", "pymc")
    assert (
        resolve_backend("auto", large, request_for(large), "gpu").choice == "auto -> numpyro (GPU)"
    )


def test_auto_falls_back_to_the_next_backend_with_a_reason():
    large = varying_slopes_model(100_000)
    dense = resolve_backend("auto", large, request_for(large, init="adapt_full"), "cpu")
    assert dense.backend_id == "numpyro" and not dense.reason
    assert dense.choice.startswith("auto -> numpyro (nutpie cannot sample this: `init=")

    with pm.Model() as discrete:
        pm.Poisson("k", 3.0)
    last = resolve_backend("auto", discrete, request_for(discrete), "cpu")
    assert last.backend_id == "pymc"
    assert last.reason.startswith(f"{AUTO_SMALL} cannot sample this: the model has discrete")


def test_explicit_nuts_sampler_wins_over_auto():
    model = tiny_model()
    assert resolve_backend("auto", model, request_for(model, nuts_sampler="nutpie")).backend_id == (
        "nutpie"
    )
    assert resolve_backend("auto", model, request_for(model, nuts_sampler="pymc")).backend_id == (
        "pymc"
    )


def test_short_count():
    assert [short_count(n) for n in (20, 919, 1000, 100_000, 123_456)] == [
        "20",
        "919",
        "1.0e3",
        "1.0e5",
        "1.2e5",
    ]


def test_auto_resolution_imports_no_sampler_library():
    code = textwrap.dedent(
        """
        import sys
        import pymc.sampling.mcmc as mcmc
        from cloudcache.backends.registry import resolve_backend
        from cloudcache.demo.models import radon_model, varying_slopes_model
        from cloudcache.calls.request import normalize_sample_call
        for model in (radon_model(), varying_slopes_model(30_000)):
            request = normalize_sample_call(mcmc.sample, (), {"model": model})
            resolution = resolve_backend("auto", model, request, "cpu")
            resolution.backend.library_versions()
            print(resolution.backend_id)
        print(sorted(m for m in ("jax", "nutpie", "numpyro") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [AUTO_SMALL, "nutpie", "[]"]


@pytest.mark.parametrize(
    ("backend", "resolved"),
    [("auto", AUTO_SMALL), ("numpyro", "numpyro"), ("nutpie", "nutpie"), ("pymc", "pymc")],
)
def test_miss_then_hit_round_trip_per_backend(tmp_path, caplog, backend, resolved):
    caplog.set_level("INFO", logger="cloudcache")
    with cloudcache.cloud(regression(), cache=str(tmp_path), backend=backend, quiet=True) as run:
        missed = pm.sample(**TINY)
        assert not run.last.hit and run.last.backend == resolved
        hit = pm.sample(**TINY)
        assert run.last.hit and run.last.backend == resolved
    xr.testing.assert_equal(hit.posterior, missed.posterior)
    # The entry on disk verifies too (nutpie's all-None divergence_message once failed its own
    # checksum after the NetCDF round trip, so every nutpie disk hit resampled).
    with cloudcache.cloud(regression(), cache=FileStore(str(tmp_path)), backend=backend) as run:
        from_disk = pm.sample(**TINY)
        assert run.last.hit and run.last.location.endswith(".nc")
    xr.testing.assert_equal(from_disk.posterior, missed.posterior)
    if backend == "auto":
        assert f"auto -> {AUTO_SMALL} (CPU, 80 observations)" in caplog.text


def test_auto_and_the_backend_it_picks_share_a_key_for_a_small_model(tmp_path):
    with cloudcache.cloud(regression(), cache=str(tmp_path), quiet=True, device="cpu") as run:
        pm.sample(**TINY)
    with cloudcache.cloud(regression(), cache=str(tmp_path), backend=AUTO_SMALL, quiet=True) as run:
        pm.sample(**TINY)
        assert run.last.hit


def test_a_cloudpickled_model_has_the_same_structure_key():
    """What a Dask worker receives is a new object each time: it must find the compiled model."""
    import cloudpickle

    from cloudcache.backends.nutpie.compiled import lifted_model, structure_key
    from cloudcache.backends.nutpie.plan import plan_nutpie

    model = regression()
    plan = plan_nutpie(request_for(model))
    shipped = cloudpickle.loads(cloudpickle.dumps(model))
    assert shipped is not model
    keys = {structure_key(lifted_model(m), plan) for m in (model, shipped, regression(shift=1.0))}
    assert len(keys) == 1
    other = plan_nutpie(request_for(model, var_names=["reg::a"]))
    assert structure_key(lifted_model(model), other) not in keys


def test_a_cloudpickled_model_has_the_same_numpyro_kernel_key():
    """The NumPyro runner's cache must recognise a shipped model too (scalar ops, frozendicts)."""
    import cloudpickle

    from cloudcache.backends.numpyro.logp import model_graph

    model = radon_model()
    shipped = cloudpickle.loads(cloudpickle.dumps(model))
    keys = [model_graph(m).key for m in (model, shipped)]
    assert keys[0] == keys[1]
    assert not keys[1].pinned  # nothing keyed by identity in a plain model


def test_nutpie_persists_needs_pytensors_numba_cache_and_a_recent_nutpie(monkeypatch):
    """The rule reads versions and PyTensor's flag only: deterministic for an environment."""
    import pytensor

    from cloudcache.backends import choose

    assert choose._release("0.16.11") == (0, 16, 11)
    assert choose._release("0.17.0rc1") == (0, 17, 0)
    check = choose.nutpie_persists.__wrapped__
    monkeypatch.setattr(pytensor.config, "numba__cache", False)
    assert not check()
    monkeypatch.setattr(pytensor.config, "numba__cache", True)
    monkeypatch.setattr(choose, "NUTPIE_DISK_CACHE_SINCE", (99,))
    assert not check()
    monkeypatch.setattr(choose, "NUTPIE_DISK_CACHE_SINCE", (0,))
    assert check()
