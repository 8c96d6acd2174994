"""Every private upstream API cloudcache relies on, checked against the installed versions.

Each function of ``cloudcache/compat/`` that reaches into PyMC, PyTensor, JAX, xarray or nutpie
internals has a test here that fails loudly when the upstream changes (the attribute gone, a
signature changed, a result of another kind or with another meaning), never silently.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from pytensor.compile.ops import FromFunctionOp
from pytensor.graph.basic import Apply, Constant, Variable
from pytensor.graph.op import Op
from pytensor.graph.traversal import ancestors
from pytensor.graph.type import Type
from pytensor.tensor.math import Max, Min
from pytensor.tensor.random.type import RandomType
from pytensor.tensor.sharedvar import SharedVariable
from tiny_models import tiny_model

from cloudcache.compat import pymc as pymc_compat
from cloudcache.compat import pytensor as pytensor_compat
from cloudcache.compat import xarray as xarray_compat


# -- PyMC ----------------------------------------------------------------------------------------
def test_default_cores_is_a_positive_count() -> None:
    cores = pymc_compat.default_cores()
    assert isinstance(cores, int) and cores >= 1


def test_forward_seed_is_the_seed_pymcs_forward_sampler_uses() -> None:
    """The prior predictive drawn with ``random_seed=seed`` equals the one drawn with the seed
    :func:`forward_seed` derives from it, and a generator passed in is not advanced."""

    def prior(seed: Any) -> np.ndarray:
        tree = pm.sample_prior_predictive(draws=5, model=tiny_model(""), random_seed=seed)
        return np.asarray(pymc_compat.as_tree(tree)["prior"]["a"])

    derived = pymc_compat.forward_seed(7)
    assert isinstance(derived, int) and not isinstance(derived, bool)
    np.testing.assert_array_equal(prior(7), prior(derived))
    generator = np.random.default_rng(3)
    before = generator.bit_generator.state
    assert pymc_compat.forward_seed(generator) == pymc_compat.forward_seed(np.random.default_rng(3))
    assert generator.bit_generator.state == before


def _half_cut_model() -> pm.Model:
    """Half of the jittered start points have a log density of -inf (a retry each)."""
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 1.0)
        pm.Normal("b", a, 1.0, shape=2)
        pm.Potential("cut", pt.switch(a > 0.0, 0.0, -np.inf))
    return model


@pytest.mark.parametrize(
    ("initvals", "jitter", "retries"),
    [
        (None, True, 10),
        (None, False, 10),
        ({"a": 0.5}, True, 10),
        ([{"a": 0.25}, {"a": 0.75}, None], True, 10),
        (None, True, 1),
    ],
)
def test_init_jitter_is_pymcs_step_for_step(initvals: Any, jitter: bool, retries: int) -> None:
    from pymc.exceptions import SamplingError
    from pymc.sampling.mcmc import _init_jitter

    model = _half_cut_model()
    logp = model.compile_logp()
    functions = pymc_compat.initial_point_functions(model, initvals, jitter=jitter, chains=3)
    for seeds in ([1, 2, 3], [40, 41, 42], [7, 700, 70_000]):
        try:
            expected = _init_jitter(model, initvals, seeds, jitter, retries, logp_fn=logp)
        except SamplingError as error:
            with pytest.raises(SamplingError, match=str(error)[:40]):
                pymc_compat.init_jitter(
                    model, initvals, seeds=seeds, jitter=jitter,
                    jitter_max_retries=retries, logp_fn=logp, functions=functions,
                )  # fmt: skip
            continue
        for kept in (None, functions):  # built here, or kept from an earlier call
            got = pymc_compat.init_jitter(
                model, initvals, seeds=seeds, jitter=jitter,
                jitter_max_retries=retries, logp_fn=logp, functions=kept,
            )  # fmt: skip
            assert len(got) == len(expected) == 3
            for mine, theirs in zip(got, expected, strict=True):
                assert sorted(mine) == sorted(theirs)
                for name in theirs:
                    np.testing.assert_array_equal(mine[name], theirs[name])


def test_init_jitter_gives_one_start_point_per_seed() -> None:
    model = tiny_model("")
    names = sorted(var.name for var in model.value_vars)
    seen: list[dict[str, np.ndarray]] = []

    def logp(point: dict[str, np.ndarray]) -> float:
        seen.append(point)
        return 0.0

    points = pymc_compat.init_jitter(
        model, None, seeds=[1, 2], jitter=True, jitter_max_retries=3, logp_fn=logp
    )
    assert isinstance(points, list) and len(points) == 2
    assert all(sorted(point) == names for point in points)
    assert not np.allclose(points[0]["a"], points[1]["a"])  # jittered, per seed
    assert seen, "the logp function judges each jittered point"
    plain = pymc_compat.init_jitter(
        model, None, seeds=[1], jitter=False, jitter_max_retries=3, logp_fn=logp
    )
    for name, value in model.initial_point().items():
        np.testing.assert_array_equal(plain[0][name], value)


def test_class_registries_hold_a_custom_dists_log_density() -> None:
    def logp(value: Any, mu: Any) -> Any:
        return -0.5 * (value - mu) ** 2

    with pm.Model():
        mu = pm.Normal("mu")
        y = pm.CustomDist("y", mu, logp=logp, observed=np.zeros(3))
    registries = pymc_compat.class_registries()
    assert sorted(registries) == ["icdf", "logcdf", "logprob", "support_point"]
    for registry in registries.values():
        assert callable(registry.register) and hasattr(registry.registry, "get")
    assert registries["logprob"].registry.get(type(y.owner.op)) is not None


# -- PyTensor ------------------------------------------------------------------------------------
def _graph_objects(model: pm.Model) -> list[Any]:
    variables = list(ancestors([*model.basic_RVs, model.logp()]))
    nodes = [var.owner for var in variables if var.owner is not None]
    return [*variables, *nodes, *(node.op for node in nodes), *(var.type for var in variables)]


def test_is_instance_agrees_with_isinstance_on_a_real_graph() -> None:
    """Holds only while PyTensor's graph classes have no virtual subclasses."""
    classes = (Op, Type, Variable, Constant, SharedVariable, RandomType, FromFunctionOp, Apply)
    objects = [*_graph_objects(tiny_model()), 3.0, "text", np.zeros(2)]
    for obj in objects:
        for cls in classes:
            assert pytensor_compat.is_instance(obj, cls) == isinstance(obj, cls), (obj, cls)
        assert pytensor_compat.is_instance(obj, Op, Type) == isinstance(obj, Op | Type)


def test_reduction_settings_rebuild_the_same_reduction() -> None:
    assert int(pytensor.__version__.split(".")[0]) == pytensor_compat.PYTENSOR_MAJOR
    x = pt.dmatrix("x")
    op = pt.max(x, axis=1).owner.op
    assert isinstance(op, Max)
    settings = pytensor_compat.reduction_settings(op)
    assert Max(op.axis, **settings) == op
    assert Min(op.axis, **settings).make_node(x).outputs[0].type.shape == (None,)
    assert pytensor_compat.reduction_initial(op, "float64") is None  # empty axes: an error
    if pytensor_compat.PYTENSOR_MAJOR >= 3:  # a reduction with an initial value: its identity
        assert np.isneginf(pytensor_compat.reduction_initial(Max((1,), initial=True), "float64"))
        assert np.isposinf(pytensor_compat.reduction_initial(Min((1,), initial=True), "float64"))


# -- xarray --------------------------------------------------------------------------------------
def test_the_installed_datatree_has_the_layout_the_fast_copy_knows() -> None:
    """If this fails, memory hits still work (the public copy is used) but cost ~1 ms per group
    more: update ``KNOWN_LAYOUT`` and ``_copy_node`` in cloudcache/compat/xarray.py."""
    assert frozenset(xr.DataTree.__slots__) == xarray_compat.KNOWN_LAYOUT
    assert xarray_compat.FAST_COPY


def test_shallow_copy_equals_the_public_copy_over_the_same_arrays() -> None:
    draws = np.arange(12.0).reshape(2, 6)
    tree = xr.DataTree.from_dict(
        {
            "/posterior": xr.Dataset(
                {"a": (("chain", "draw"), draws)}, coords={"draw": np.arange(6)}, attrs={"x": 1}
            ),
            "/sample_stats": xr.Dataset({"lp": (("chain", "draw"), -draws)}),
        }
    )
    tree.attrs["top"] = "yes"
    copied = xarray_compat.shallow_copy(tree)
    assert copied is not None
    xr.testing.assert_identical(copied, tree.copy(deep=False))
    assert copied["posterior"] is not tree["posterior"]
    assert np.shares_memory(copied["posterior"]["a"].values, draws)
    copied["posterior"].attrs["x"] = 2
    copied["posterior"]["b"] = copied["posterior"]["a"] * 2
    assert tree["posterior"].attrs["x"] == 1 and "b" not in tree["posterior"]
    assert xarray_compat.shallow_copy(tree["posterior"]) is None  # not a root: public copy


def test_read_array_is_wrapped_as_xarrays_backends_wrap_what_they_read() -> None:
    """If this fails, entries still load (the bare array is used) but a fresh process pays
    ~0.3 s to import dask.array on its first read: update ``read_array``."""
    from xarray.core.indexing import ExplicitlyIndexed

    values = np.arange(6.0).reshape(2, 3)
    wrapped = xarray_compat.read_array(values)
    assert isinstance(wrapped, ExplicitlyIndexed)
    decoded = xr.decode_cf(xr.Dataset({"a": xr.Variable(("x", "y"), wrapped)})).load()
    assert type(decoded["a"].variable._data) is np.ndarray
    xr.testing.assert_identical(decoded, xr.decode_cf(xr.Dataset({"a": (("x", "y"), values)})))


def test_dimension_coordinates_read_as_the_index_xarray_builds() -> None:
    """If this fails, a fresh process's first hit imports dask (~0.1 s) to build each
    dimension's index: update ``index_or_array``. Other arrays keep the read wrapper."""
    from xarray.core.indexing import ExplicitlyIndexed

    kept = [
        np.arange(3, dtype=np.int32),
        np.arange(3, dtype=np.int64),
        np.arange(3, dtype=np.uint16),
        np.array([0.5, 1.5], dtype=np.float32),
        np.array([0.5, 1.5]),
        np.array(["county a", "b"], dtype=object),
    ]
    for values in kept:
        held = xarray_compat.index_or_array("x", ("x",), values)
        built = xr.Dataset({"x": xr.Variable(("x",), held, {"units": "u"})})
        expected = xr.Dataset({"x": xr.Variable(("x",), values, {"units": "u"})})
        xr.testing.assert_identical(built, expected)
        assert built["x"].dtype == values.dtype
        assert isinstance(built.indexes["x"], type(expected.indexes["x"]))
    wrapped = [
        ("x", ("x",), np.array([0.5, 1.5], dtype=np.float16)),  # xarray casts these itself
        ("x", ("x",), np.array([b"ab", b"c"])),
        ("x", ("x",), np.array([True, False])),
        ("x", ("x", "y"), np.zeros((2, 2))),
        ("a", ("x",), np.arange(3)),  # not a dimension coordinate
    ]
    for name, dims, values in wrapped:
        assert isinstance(xarray_compat.index_or_array(name, dims, values), ExplicitlyIndexed)


def test_building_libraries_are_all_a_result_imports_to_be_built_and_written(tmp_path) -> None:
    """A NumPyro miss imports :func:`building_libraries` while it samples (then the checks'
    libraries, in the same thread, while the result is built and written); building the result
    and writing it must then import nothing heavy on the caller's thread (with Dask installed,
    xarray imported ``dask.array`` and ``dask.distributed`` there: 0.4 s of a fresh miss), and
    nothing the checks' libraries import (the two threads never wait on each other)."""
    code = (
        "import sys\n"
        "import numpy as np, pymc\n"
        "from cloudcache.compat.arviz import building_libraries, import_libraries, sampler_tree\n"
        "from cloudcache.stores.format.netcdf import write_entry\n"
        "import_libraries(building_libraries())\n"
        "before = set(sys.modules)\n"
        "tree = sampler_tree({'posterior': {'a': np.zeros((2, 5, 3))}, 'sample_stats': "
        "{'diverging': np.zeros((2, 5), bool)}}, coords={'k': [1, 2, 3]}, dims={'a': ['k']}, "
        "run_attrs={'sampling_time': 1.0}, library='numpyro', from_dict_kwargs={})\n"
        f"write_entry(tree, 'k' * 16, {{'kind': 'sample'}}, {str(tmp_path / 'e.nc')!r})\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    checking = (
        "import sys\n"
        "import numpy as np, pymc\n"
        "from cloudcache.compat.arviz import building_libraries, checking_libraries\n"
        "from cloudcache.compat.arviz import import_libraries\n"
        "import_libraries(building_libraries())\n"
        "before = set(sys.modules)\n"
        "import_libraries(checking_libraries())\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    done, checks = (
        subprocess.run(
            [sys.executable, "-c", source], capture_output=True, text=True, timeout=300, check=True
        )
        for source in (code, checking)
    )
    imported = set(done.stdout.split())
    heavy = {"dask", "distributed", "arviz", "arviz_base", "arviz_stats", "scipy"}
    assert not {name.split(".")[0] for name in imported} & heavy, (imported, done.stderr[-2000:])
    assert not imported & set(checks.stdout.split()), imported & set(checks.stdout.split())


# -- JAX -----------------------------------------------------------------------------------------
def test_backends_initialized_turns_true_once_jax_starts() -> None:
    code = (
        "from cloudcache.compat.jax import backends_initialized\n"
        "import jax\n"
        "before = backends_initialized()\n"
        "jax.devices()\n"
        "print(before, backends_initialized())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_single_device_sharding_places_on_that_device_without_a_deprecation() -> None:
    import warnings

    import jax

    from cloudcache.compat.jax import single_device_sharding

    device = jax.devices()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        sharding = single_device_sharding(device)
    assert sharding.device_set == {device}
    assert jax.device_put(np.arange(3.0), sharding).devices() == {device}


def test_set_up_lowering_time_kernels_lets_a_loaded_lapack_program_run(tmp_path: Path) -> None:
    """One process compiles and serialises a log-gamma (a math kernel JAX registers at start)
    and a Cholesky factorisation (a LAPACK kernel JAX sets up as it lowers one); another loads
    both without lowering anything: the first runs as it is, the second after the set-up."""
    programs = tmp_path / "programs.bin"
    keep = (
        "import pickle, re, sys, jax, jax.numpy as jnp, numpy as np\n"
        "from jax.experimental.serialize_executable import serialize\n"
        "from cloudcache.compat.jax import needs_lowering_time_kernels\n"
        "kept = []\n"
        "for function in (jax.scipy.special.gammaln, jnp.linalg.cholesky):\n"
        "    compiled = jax.jit(function).lower(np.eye(3) * 4.0).compile()\n"
        '    calls = re.findall(r\'custom_call_target="([^"]+)"\', compiled.as_text())\n'
        "    print(needs_lowering_time_kernels(calls))\n"
        "    kept.append(serialize(compiled))\n"
        "open(sys.argv[1], 'wb').write(pickle.dumps(kept))\n"
    )
    load = (
        "import pickle, sys, numpy as np\n"
        "from jax.experimental.serialize_executable import deserialize_and_load\n"
        "from cloudcache.compat.jax import set_up_lowering_time_kernels\n"
        "gammaln, cholesky = [deserialize_and_load(*kept)\n"
        "                     for kept in pickle.loads(open(sys.argv[1], 'rb').read())]\n"
        "print(round(float(np.asarray(gammaln(np.eye(3) * 4.0))[0, 0]), 6))\n"
        "assert set_up_lowering_time_kernels()\n"
        "print(np.asarray(cholesky(np.eye(3) * 4.0)).diagonal().tolist())\n"
    )
    outputs = []
    for code in (keep, load):
        out = subprocess.run(
            [sys.executable, "-c", code, str(programs)], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        outputs.append(out.stdout.split())
    assert outputs[0] == ["False", "True"]  # log-gamma needs no set-up, Cholesky does
    log_gamma, *factor = outputs[1]
    assert abs(float(log_gamma) - math.log(6.0)) < 1e-5  # log(3!), float32 or float64
    assert factor == ["[2.0,", "2.0,", "2.0]"]


def test_needs_lowering_time_kernels_for_any_call_but_jax_math_kernels() -> None:
    from cloudcache.compat.jax import needs_lowering_time_kernels

    assert not needs_lowering_time_kernels([])
    assert not needs_lowering_time_kernels(["cpu_lgamma_ffi", "cu_digamma_ffi"])
    for target in ("lapack_dpotrf_ffi", "cu_hybrid_eig_real", "__cublas$gemm", "?"):
        assert needs_lowering_time_kernels(["cpu_lgamma_ffi", target]), target


def test_started_before_fork_is_true_only_in_a_child_of_a_started_jax() -> None:
    code = (
        "import os, jax\n"
        "from cloudcache.compat.jax import started_before_fork\n"
        "def child():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(10 + started_before_fork())\n"
        "    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) - 10\n"
        "before = child()\n"
        "jax.devices()\n"
        "print(before, child(), int(started_before_fork()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.stdout.split() == ["0", "1", "0"], out.stderr


def test_reset_compilation_cache_reopens_the_cache_in_the_configured_directory(
    tmp_path: Any,
) -> None:
    code = (
        "import sys, jax, jax.numpy as jnp\n"
        "from cloudcache.compat.jax import reset_compilation_cache\n"
        "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)\n"
        "jax.jit(lambda x: x + 1)(1.0)\n"  # the cache is checked (no directory yet)
        "jax.config.update('jax_compilation_cache_dir', sys.argv[1])\n"
        "reset_compilation_cache()\n"
        "jax.jit(lambda x: x * 3.0 - 1)(2.0)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert any(tmp_path.iterdir()), "after the reset, the compilation went to the new directory"


# -- nutpie --------------------------------------------------------------------------------------
def test_data_names_of_a_compiled_nutpie_model() -> None:
    nutpie = pytest.importorskip("nutpie")
    from cloudcache.compat.nutpie import data_names

    with pm.Model() as model:
        x = pm.Data("x", np.linspace(0, 1, 5))
        b = pm.Normal("b")
        pm.Normal("y", b * x, 1.0, observed=np.zeros(5))
    compiled = nutpie.compile_pymc_model(model)
    assert data_names(compiled) == {"x"}
    compiled.with_data(x=np.linspace(1, 2, 5))  # the names are what with_data takes


def test_netcdf4_lock_is_the_one_xarray_holds() -> None:
    """Direct netCDF4 reads share xarray's lock; our own lock would let the two race."""
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    from cloudcache.compat.xarray import netcdf4_lock

    assert netcdf4_lock() is NETCDF4_PYTHON_LOCK


# -- pymc-extras ---------------------------------------------------------------------------------
def test_lbfgs_settings_are_every_setting_pathfinder_reads() -> None:
    """pymc-extras 0.12's ``LBFGSConfig`` as its six settings by name, ``None`` as its defaults,
    and exactly the fields pathfinder copies into its ``PathfinderConfig``."""
    lbfgs = pytest.importorskip("pymc_extras.inference.pathfinder.lbfgs")
    if not hasattr(lbfgs, "LBFGSConfig"):
        pytest.skip("this pymc-extras takes the L-BFGS settings as arguments (0.10, 0.11)")
    from cloudcache.compat.pymc_extras import lbfgs_settings

    defaults = lbfgs_settings(None)
    assert defaults == lbfgs_settings(lbfgs.LBFGSConfig())
    assert set(defaults) == {"maxcor", "maxiter", "ftol", "gtol", "maxls", "epsilon"}
    assert defaults["maxcor"] is None  # derived from the model's size when pathfinder runs
    assert lbfgs_settings(lbfgs.LBFGSConfig(maxiter=7))["maxiter"] == 7
    config = lbfgs.LBFGSConfig(maxcor=6).set_default_maxcor(100)
    assert lbfgs_settings(config)["maxcor"] == 6  # an explicit maxcor is kept as given
