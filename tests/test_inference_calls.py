"""``pm.sample_smc``, ``pm.find_MAP`` and ``pm.fit`` inside ``cloud()``: real calls, real files.

Each kind: a miss returns what the uncached call returns, a memory hit and a fresh-process disk
hit return the same numbers, a changed argument misses, every key rule is proven by running
both spellings uncached, and calls the cache cannot keep run uncached with a reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from fresh_calls import calls_in_fresh_process

import cloudcache as cc
from cloudcache.calls.smc import SmcCall
from cloudcache.compat.pymc import PYMC_MAJOR, as_tree

SMC = {"draws": 60, "chains": 2, "cores": 1, "progressbar": False}
FIT = {"n": 60, "progressbar": False}
#: PyMC 6's find_MAP warns unless `jitter` is given; PyMC 5's has no such argument.
MAP = {"progressbar": False, **({"jitter": False} if PYMC_MAJOR >= 6 else {})}


def build_model() -> pm.Model:
    """A small model with a named dim (the same in this process and in a fresh one)."""
    observed = np.random.default_rng(0).normal(1.0, 2.0, 40)
    with pm.Model(coords={"group": ["a", "b"]}) as model:
        mu = pm.Normal("mu", 0.0, 1.0, dims="group")
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", mu[0] + mu[1], sigma, observed=observed)
    return model


pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def calls(model: pm.Model) -> dict:
    """One of each kind, with fixed seeds: name -> result."""
    with model:
        return {
            "sample_smc": pm.sample_smc(random_seed=3, **SMC),
            "find_MAP": pm.find_MAP(**MAP),
            "fit": pm.fit(random_seed=3, **FIT),
        }


def summary(results: dict) -> dict:
    """The numbers of each result, as JSON-able lists."""
    smc = as_tree(results["sample_smc"])
    approx = results["fit"]
    return {
        "smc_mu": smc["posterior"]["mu"].values.tolist(),
        "smc_beta": [float(v) for v in np.ravel(smc["sample_stats"]["beta"].values.tolist())],
        "map": {name: np.asarray(value).tolist() for name, value in results["find_MAP"].items()},
        "fit_mean": approx.mean.eval().tolist(),
        "fit_std": approx.std.eval().tolist(),
        "fit_hist": np.asarray(approx.hist).tolist(),
        "fit_sample": as_tree(approx.sample(7, random_seed=5))["posterior"]["mu"].values.tolist(),
    }


@pytest.fixture(scope="module")
def uncached() -> dict:
    return calls(build_model())


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, uncached: dict) -> tuple[Path, dict, list]:
    """A cache folder filled by misses of each kind (then hit once from memory)."""
    root = tmp_path_factory.mktemp("inference-cache")
    model = build_model()
    with cc.cloud(model, cache=root, quiet=True) as run:
        missed = calls(model)
        hit = calls(model)
    return root, {"miss": missed, "hit": hit}, list(run.records)


def test_a_miss_returns_what_the_uncached_call_returns(uncached: dict, filled) -> None:
    _, results, records = filled
    assert [(r.kind, r.hit) for r in records[:3]] == [
        ("sample_smc", False),
        ("find_MAP", False),
        ("fit", False),
    ]
    assert summary(results["miss"]) == summary(uncached)
    missed_smc, plain_smc = as_tree(results["miss"]["sample_smc"]), as_tree(uncached["sample_smc"])
    assert set(missed_smc.children) == set(plain_smc.children)
    stats, plain_stats = missed_smc["sample_stats"], plain_smc["sample_stats"]
    for name in plain_stats.data_vars:
        assert stats[name].dtype == plain_stats[name].dtype == object
        assert stats[name].dims == plain_stats[name].dims
    assert list(results["miss"]["find_MAP"]) == list(uncached["find_MAP"])
    assert type(results["miss"]["fit"]) is type(uncached["fit"])


def test_a_memory_hit_returns_the_same_numbers(filled) -> None:
    _, results, records = filled
    assert [(r.kind, r.hit, r.location) for r in records[3:]] == [
        ("sample_smc", True, "memory"),
        ("find_MAP", True, "memory"),
        ("fit", True, "memory"),
    ]
    assert summary(results["hit"]) == summary(results["miss"])


def test_a_fresh_process_hits_the_files_with_the_same_numbers(filled) -> None:
    root, results, _ = filled
    answer = calls_in_fresh_process("test_inference_calls", root)
    assert answer["hits"] == [True, True, True]
    assert answer["kinds"] == ["sample_smc", "find_MAP", "fit"]
    assert answer["summary"] == json.loads(json.dumps(summary(results["miss"])))


def test_entries_are_plain_netcdf_naming_their_kind(filled) -> None:
    root, _, _ = filled
    files = sorted(root.rglob("*.nc"))
    assert [path.name.rsplit("-", 1)[0] for path in files] == [
        "fit_advi_n60",
        "map_L-BFGS-B",
        "smc_draws60_chains2",
    ]
    for path in files:
        tree = xr.open_datatree(path, engine="h5netcdf")
        metadata = json.loads(tree.attrs["cloudcache_metadata"])
        assert metadata["kind"] in {"sample_smc", "find_MAP", "fit"}
        tree.close()


@pytest.mark.parametrize(
    ("kind", "first", "changed"),
    [
        ("sample_smc", {"random_seed": 3, **SMC}, {"random_seed": 4, **SMC}),
        ("sample_smc", {"random_seed": 3, **SMC}, {"random_seed": 3, **SMC, "draws": 61}),
        ("find_MAP", {"progressbar": False}, {"progressbar": False, "method": "Powell"}),
        ("fit", {"random_seed": 3, **FIT}, {"random_seed": 3, **FIT, "n": 61}),
        ("fit", {"random_seed": 3, **FIT}, {"random_seed": 4, **FIT}),
    ],
)
def test_a_changed_argument_misses(kind: str, first: dict, changed: dict) -> None:
    model = build_model()
    with cc.cloud(model, quiet=True) as run:
        getattr(pm, kind)(**first)
        getattr(pm, kind)(**changed)
        getattr(pm, kind)(**first)
    assert [r.hit for r in run.records] == [False, False, True]
    assert run.records[0].key != run.records[1].key


@pytest.mark.parametrize(
    ("kind", "one", "other"),
    [
        ("sample_smc", {"random_seed": 3, **SMC}, {**SMC, "random_seed": np.int64(3)}),
        ("sample_smc", {"random_seed": 3, **SMC}, {"random_seed": 3, **SMC, "cores": 2}),
        ("find_MAP", {"progressbar": False, "jitter": False}, {"progressbar": False}),
        ("fit", {"random_seed": 3, **FIT}, {"random_seed": 3, **FIT, "method": "ADVI"}),
        ("fit", {"random_seed": 3, **FIT}, {"random_seed": np.int64(3), **FIT}),
    ],
    ids=["smc-seed-int64", "smc-cores", "map-jitter-none", "fit-method-case", "fit-seed-int64"],
)
def test_spellings_pymc_treats_alike_are_one_key(kind: str, one: dict, other: dict) -> None:
    """Each rule proven: both spellings run uncached give the same numbers, then one key."""
    if kind == "find_MAP" and PYMC_MAJOR < 6:
        pytest.skip("PyMC 5's find_MAP has no `jitter`")
    model = build_model()
    with model:
        plain = [_numbers(kind, getattr(pm, kind)(**dict(spelling))) for spelling in (one, other)]
    np.testing.assert_array_equal(plain[0], plain[1])
    with cc.cloud(model, quiet=True) as run:
        getattr(pm, kind)(**one)
        getattr(pm, kind)(**other)
    assert [r.hit for r in run.records] == [False, True]


def _numbers(kind: str, result) -> np.ndarray:
    if kind == "sample_smc":
        return as_tree(result)["posterior"]["mu"].values
    if kind == "find_MAP":
        return np.concatenate([np.ravel(value) for value in result.values()])
    return result.mean.eval()


@pytest.mark.parametrize(
    ("kind", "arguments", "reason"),
    [
        ("sample_smc", {**SMC, "return_inferencedata": False}, "MultiTrace"),
        ("find_MAP", {"progressbar": False, "return_raw": True}, "OptimizeResult"),
        ("fit", {**FIT, "method": "prepared"}, "method="),
    ],
)
def test_calls_the_cache_cannot_keep_run_uncached_with_a_reason(
    kind: str, arguments: dict, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = build_model()
    if arguments.get("method") == "prepared":
        with model:
            arguments = {**arguments, "method": pm.ADVI()}
    with cc.cloud(model) as run:
        result = getattr(pm, kind)(**arguments)
    assert run.last.location == "uncached" and reason in run.last.reason
    assert result is not None


def test_ragged_smc_stage_statistics_come_back_as_pymc_builds_them() -> None:
    """Chains that took different numbers of stages: PyMC stores lists in an object array."""
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [0.1, 0.5, 1.0], [0.2, 1.0]
    square = np.array([[0.5, 0.7], [0.6, 0.8]], dtype=object)
    stats = xr.Dataset(
        {"beta": (("chain",), ragged), "accept_rate": (("chain", "accept_rate_dim_0"), square)},
        coords={"chain": [0, 1]},
        attrs={"_n_draws": 60},
    )
    tree = xr.DataTree.from_dict({"/posterior": xr.Dataset(), "/sample_stats": stats})
    kind = SmcCall(build_model())
    stored = kind.to_tree(tree)
    assert all(v.dtype == float for v in stored["sample_stats"].data_vars.values())
    back = as_tree(kind.result(stored))["sample_stats"]
    assert back["beta"].dtype == object and back["beta"].dims == ("chain",)
    assert [list(row) for row in back["beta"].values] == [[0.1, 0.5, 1.0], [0.2, 1.0]]
    assert back["accept_rate"].dtype == object
    assert back["accept_rate"].values.tolist() == square.tolist()
    assert back.attrs["_n_draws"] == 60
