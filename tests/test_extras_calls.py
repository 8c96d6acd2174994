"""pymc-extras' ``fit_pathfinder`` and ``fit_laplace`` inside ``cloud()``: real calls, real files.

Each kind: a miss returns what the uncached call returns (the same groups in the same order, the
same numbers, dtypes and attributes), a memory hit and a fresh-process disk hit return the same,
a changed argument misses, and every key rule is proven by running both spellings uncached.
It runs with the pymc-extras the ``extras`` extra installs (pyproject.toml): 0.10 beside PyMC 5,
0.12 beside PyMC 6.4. The releases name pathfinder's arguments differently (0.12 takes the L-BFGS
settings as one ``LBFGSConfig`` and ``parallel=`` for 0.10's ``concurrent=``, and keeps its
diagnostics in a ``pathfinder`` group rather than ``sample_stats``): the spellings below follow
the installed one's signature.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from click.testing import CliRunner
from fresh_calls import calls_in_fresh_process

import cloudcache as cc
from cloudcache.calls.dispatch import OPTIONAL_PATCH_TARGETS, available_targets
from cloudcache.cli import app
from cloudcache.compat.pymc import as_tree

pmx = pytest.importorskip(
    "pymc_extras",
    reason="pymc-extras is not installed (the `extras` extra: pip install -e '.[test,extras]')",
)

#: 0.12 and later: the L-BFGS settings as one ``LBFGSConfig``, ``parallel=`` for where paths run.
LBFGS_CONFIG = "lbfgs_config" in inspect.signature(pmx.fit_pathfinder).parameters
#: The group of pathfinder's diagnostics and timings.
STATS = "pathfinder" if LBFGS_CONFIG else "sample_stats"


def lbfgs(**settings) -> dict:
    """The L-BFGS settings as the installed ``fit_pathfinder`` takes them."""
    if LBFGS_CONFIG:
        from pymc_extras.inference.pathfinder.lbfgs import LBFGSConfig

        return {"lbfgs_config": LBFGSConfig(**settings)}
    return settings


#: Paths run one after the other in this process, and in a pool of ``cores`` worker processes.
SERIAL = {"parallel": False} if LBFGS_CONFIG else {"concurrent": None, "display_summary": False}


def in_a_pool(cores: int) -> dict:
    return (
        {"parallel": True, "cores": cores}
        if LBFGS_CONFIG
        else {"concurrent": "process", "cores": cores}
    )


#: Small and serial: each call takes a few seconds, mostly compiling.
PF = {
    "num_paths": 2,
    "num_draws": 30,
    "num_draws_per_path": 30,
    **lbfgs(maxiter=30),
    "progressbar": False,
    **SERIAL,
}
LA = {"draws": 30, "progressbar": False}
KINDS = ("fit_pathfinder", "fit_laplace")


def build_model() -> pm.Model:
    """A small model with a named dim and a deterministic (the same in a fresh process)."""
    observed = np.random.default_rng(0).normal(1.0, 2.0, 40)
    with pm.Model(coords={"group": ["a", "b"]}) as model:
        mu = pm.Normal("mu", 0.0, 1.0, dims="group")
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Deterministic("total", mu.sum())
        pm.Normal("y", mu[0] + mu[1], sigma, observed=observed)
    return model


def calls(model: pm.Model) -> dict:
    """One of each kind, with fixed seeds: name -> result."""
    with model:
        return {
            "fit_pathfinder": pmx.fit_pathfinder(random_seed=3, **PF),
            "fit_laplace": pmx.fit_laplace(random_seed=3, **LA),
        }


def summary(results: dict) -> dict:
    """Everything each result holds, JSON-able: type, groups in order, every variable's values,
    dtype and dims, and the attributes (less the timings and ArviZ's creation time, which
    differ between two runs of the same call)."""
    described = {}
    for name, result in results.items():
        tree = as_tree(result)
        groups = {}
        for group, node in tree.children.items():
            dataset = node.to_dataset(inherit=False)
            groups[group] = {
                "attrs": {k: str(v) for k, v in dataset.attrs.items() if k != "created_at"},
                "variables": {
                    var: [str(dataset[var].dtype), list(dataset[var].dims)]
                    + ([] if var.endswith("_time") else [dataset[var].values.tolist()])
                    for var in dataset.variables
                },
            }
        described[name] = {
            "type": type(result).__name__,
            "order": list(tree.children),
            "attrs": {k: str(v) for k, v in tree.attrs.items()},
            "groups": groups,
        }
    return described


def assert_same(one: dict, other: dict) -> None:
    np.testing.assert_equal(json.loads(json.dumps(one)), json.loads(json.dumps(other)))


@pytest.fixture(scope="module")
def uncached() -> dict:
    return calls(build_model())


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, uncached: dict) -> tuple[Path, dict, list]:
    """A cache folder filled by a miss of each kind, then hit once from memory."""
    root = tmp_path_factory.mktemp("extras-cache")
    model = build_model()
    with cc.cloud(model, cache=root, quiet=True) as run:
        missed = calls(model)
        hit = calls(model)
    return root, {"miss": missed, "hit": hit}, list(run.records)


def test_a_miss_returns_what_the_uncached_call_returns(uncached: dict, filled) -> None:
    _, results, records = filled
    assert [(r.kind, r.hit) for r in records[:2]] == [(kind, False) for kind in KINDS]
    assert [r.backend for r in records[:2]] == [f"pymc-extras-{kind}" for kind in KINDS]
    order = summary(uncached)["fit_laplace"]["order"]
    assert order.index("fit") < order.index("observed_data")  # pymc-extras' order, not ArviZ's
    assert_same(summary(results["miss"]), summary(uncached))


def test_a_memory_hit_returns_the_same_numbers(filled) -> None:
    _, results, records = filled
    assert [(r.kind, r.hit, r.location) for r in records[2:]] == [
        (kind, True, "memory") for kind in KINDS
    ]
    assert_same(summary(results["hit"]), summary(results["miss"]))
    timings = as_tree(results["miss"]["fit_pathfinder"])[STATS]["total_time"]
    assert as_tree(results["hit"]["fit_pathfinder"])[STATS]["total_time"] == timings


def test_a_fresh_process_hits_the_files_with_the_same_numbers(filled) -> None:
    root, results, _ = filled
    answer = calls_in_fresh_process("test_extras_calls", root)
    assert answer["hits"] == [True, True]
    assert answer["kinds"] == list(KINDS)
    assert_same(answer["summary"], summary(results["miss"]))


def test_entries_are_plain_netcdf_and_ls_names_their_kind(filled) -> None:
    root, _, _ = filled
    files = sorted(root.rglob("*.nc"))
    assert [path.name.rsplit("-", 1)[0] for path in files] == [
        "laplace_BFGS_draws30",
        "pathfinder_paths2_draws30",
    ]
    for path in files:
        tree = xr.open_datatree(path, engine="h5netcdf")
        assert json.loads(tree.attrs["cloudcache_metadata"])["kind"] in KINDS
        assert "posterior" in tree.children
        tree.close()
    table = CliRunner().invoke(app, ["ls", "-c", str(root)])
    assert table.exit_code == 0, table.output
    assert "pathfinder" in table.output and "Laplace" in table.output
    rows = json.loads(CliRunner().invoke(app, ["ls", "-c", str(root), "--json"]).stdout)
    assert sorted(row["kind"] for row in rows) == ["fit_laplace", "fit_pathfinder"]


@pytest.mark.parametrize(
    ("kind", "first", "changed"),
    [
        ("fit_pathfinder", {"random_seed": 3, **PF}, {**PF, "random_seed": 4}),
        ("fit_pathfinder", {"random_seed": 3, **PF}, {"random_seed": 3, **PF, "num_draws": 31}),
        ("fit_pathfinder", {"random_seed": 3, **PF}, {"random_seed": 3, **PF, "jitter": 1.0}),
        ("fit_pathfinder", {"random_seed": 3, **PF}, {"random_seed": 3, **PF, **lbfgs(maxiter=5)}),
        ("fit_laplace", {"random_seed": 3, **LA}, {**LA, "random_seed": 4}),
        ("fit_laplace", {"random_seed": 3, **LA}, {"random_seed": 3, **LA, "draws": 31}),
        ("fit_laplace", {"random_seed": 3, **LA}, {"random_seed": 3, **LA, "freeze_model": False}),
        (
            "fit_laplace",
            {"random_seed": 3, **LA},
            {"random_seed": 3, **LA, "optimize_method": "L-BFGS-B"},
        ),
    ],
    ids=[
        "pf-seed",
        "pf-num-draws",
        "pf-jitter",
        "pf-lbfgs-maxiter",
        "la-seed",
        "la-draws",
        "la-freeze",
        "la-method",
    ],
)
def test_a_changed_argument_misses(kind: str, first: dict, changed: dict) -> None:
    model = build_model()
    with cc.cloud(model, quiet=True) as run:
        getattr(pmx, kind)(**first)
        getattr(pmx, kind)(**changed)
        getattr(pmx, kind)(**first)
    assert [r.hit for r in run.records] == [False, False, True]
    assert run.records[0].key != run.records[1].key


@pytest.mark.parametrize(
    ("kind", "one", "other"),
    [
        ("fit_pathfinder", {"random_seed": 3}, {"random_seed": np.int64(3)}),
        ("fit_pathfinder", {"random_seed": 3}, {"random_seed": "rng:3"}),
        ("fit_pathfinder", {"random_seed": 3}, {"random_seed": 3, "importance_sampling": "PSIS"}),
        ("fit_pathfinder", {"random_seed": 3}, {"random_seed": 3, **in_a_pool(1)}),
        pytest.param(
            "fit_pathfinder",
            {"random_seed": 3, "lbfgs_config": None},
            {"random_seed": 3, "lbfgs_config": "LBFGSConfig()"},
            marks=pytest.mark.skipif(
                not LBFGS_CONFIG, reason="this pymc-extras takes the L-BFGS settings one by one"
            ),
        ),
        ("fit_laplace", {"random_seed": 3}, {"random_seed": np.int64(3)}),
        ("fit_laplace", {"random_seed": 3}, {"random_seed": 3, "jitter_rvs": []}),
        (
            "fit_laplace",
            {"random_seed": 3, "jitter_rvs": "mu sigma"},
            {"random_seed": 3, "jitter_rvs": "sigma mu"},
        ),
    ],
    ids=[
        "pf-seed-int64",
        "pf-seed-generator",
        "pf-importance-sampling-case",
        "pf-paths-in-a-process-pool",
        "pf-lbfgs-config-none-is-the-defaults",
        "la-seed-int64",
        "la-jitter-none-is-empty",
        "la-jitter-order",
    ],
)
def test_spellings_pymc_extras_treats_alike_are_one_key(kind: str, one: dict, other: dict) -> None:
    """Each rule proven: both spellings run uncached give the same numbers, then one key.

    A pool of one worker runs the paths in a worker process, one after the other (the order they
    finish in is the order they started in).
    """
    model = build_model()
    base = PF if kind == "fit_pathfinder" else LA
    spellings = [{**base, **spelling} for spelling in (one, other)]  # resolved at each call
    with model:
        plain = [_numbers(getattr(pmx, kind)(**_resolved(model, s))) for s in spellings]
    np.testing.assert_array_equal(plain[0], plain[1])
    with cc.cloud(model, quiet=True) as run:
        for spelling in spellings:
            getattr(pmx, kind)(**_resolved(model, spelling))
    assert [r.hit for r in run.records] == [False, True]


def _resolved(model: pm.Model, arguments: dict) -> dict:
    """``"rng:3"`` as a fresh ``Generator``, ``"mu sigma"`` as those model variables,
    ``"LBFGSConfig()"`` as pymc-extras' default L-BFGS settings."""
    resolved = dict(arguments)
    if resolved.get("lbfgs_config") == "LBFGSConfig()":
        resolved.update(lbfgs())
    seed = resolved.get("random_seed")
    if isinstance(seed, str):
        resolved["random_seed"] = np.random.default_rng(int(seed.split(":")[1]))
    names = resolved.get("jitter_rvs")
    if isinstance(names, str):
        resolved["jitter_rvs"] = [model[name] for name in names.split()]
    return resolved


def _numbers(result) -> np.ndarray:
    tree = as_tree(result)
    arrays = [np.ravel(tree["posterior"][name].values) for name in sorted(tree["posterior"])]
    if "fit" in tree.children:
        arrays += [
            np.ravel(tree["fit"][name].values) for name in ("mean_vector", "covariance_matrix")
        ]
    else:
        arrays.append(np.ravel(tree[STATS]["paths_logP_mean"].values))
    return np.concatenate(arrays)


def test_paths_run_in_parallel_are_the_same_paths() -> None:
    """Where paths run is left out of the key: two paths on two workers are the paths run in
    series (each path has its own seed). pymc-extras 0.12 puts them back in path order, so the
    whole result is the same; 0.10 collects them as they finish, in either order, so there only
    the set of paths is compared. The cache serves the first result to both."""
    model = build_model()
    parallel = {**PF, **in_a_pool(2)}
    with model:
        serial = pmx.fit_pathfinder(random_seed=3, **PF)
        pooled = pmx.fit_pathfinder(random_seed=3, **parallel)
    if LBFGS_CONFIG:
        assert_same(summary({"pf": pooled}), summary({"pf": serial}))
    else:
        serial_stats, parallel_stats = as_tree(serial)[STATS], as_tree(pooled)[STATS]
        for name in ("paths_logP_mean", "paths_lbfgs_niter", "paths_elbo_argmax"):
            np.testing.assert_array_equal(
                np.sort(serial_stats[name].values), np.sort(parallel_stats[name].values)
            )
    with cc.cloud(model, quiet=True) as run:
        pmx.fit_pathfinder(random_seed=3, **PF)
        pmx.fit_pathfinder(random_seed=3, **parallel)
    assert [r.hit for r in run.records] == [False, True]


def test_unseeded_calls_and_pmx_fit_are_answered_too() -> None:
    """``random_seed=None`` is keyed as "unseeded" (the first result is served), and
    ``pmx.fit(method=...)`` reaches the same cached functions."""
    model = build_model()
    with cc.cloud(model, quiet=True) as run:
        first = pmx.fit_laplace(**LA)
        again = pmx.fit_laplace(**LA)
        through_fit = pmx.fit(method="laplace", **LA)
    assert [r.hit for r in run.records] == [False, True, True]
    np.testing.assert_array_equal(_numbers(first), _numbers(again))
    np.testing.assert_array_equal(_numbers(first), _numbers(through_fit))


def test_the_functions_are_pymc_extras_own_outside_the_block() -> None:
    places = [place for kind in OPTIONAL_PATCH_TARGETS for place in available_targets()[kind]]
    assert set(places) == {place for kind in KINDS for place in OPTIONAL_PATCH_TARGETS[kind]}
    originals = {place: getattr(importlib.import_module(place[0]), place[1]) for place in places}
    with cc.cloud(build_model(), quiet=True):
        for module, attribute in originals:
            patched = getattr(importlib.import_module(module), attribute)
            assert getattr(patched, "__cloudcache_dispatcher__", False), (module, attribute)
    for (module, attribute), function in originals.items():
        assert getattr(importlib.import_module(module), attribute) is function


def test_pymc_extras_is_patched_only_once_imported() -> None:
    """cloud() never imports pymc-extras itself (it costs a process ~0.1 s); a block opened
    after the user imports it dispatches its functions."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import cloudcache as cc
        from test_inference_calls import build_model
        model = build_model()
        with cc.cloud(model, quiet=True):
            assert "pymc_extras" not in sys.modules
            import pymc_extras as pmx
            assert not hasattr(pmx.fit_laplace, "__cloudcache_dispatcher__")
            with cc.cloud(model, quiet=True):
                assert pmx.fit_laplace.__cloudcache_dispatcher__
        assert not hasattr(pmx.fit_laplace, "__cloudcache_dispatcher__")
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "ok"
