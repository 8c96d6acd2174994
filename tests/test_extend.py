"""Extending a stored NumPyro run: a request for more draws samples only the extra ones.

The reference is always a fresh run of the larger request (``overwrite=True`` in another cache
folder, or another process); draws, stats and deterministics are compared exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from resume_runs import kill_when, run_sampling, sampling_command

import cloudcache as cc
from cloudcache.backends.numpyro import runner
from cloudcache.backends.numpyro.runner import KERNELS
from cloudcache.stores.checkpoints import RESUME_DIR
from cloudcache.stores.final_states import EXTEND_DIR

CALL = {"tune": 200, "chains": 2, "random_seed": 11, "progressbar": False}


def eight_schools() -> pm.Model:
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta = pm.Normal("theta_tilde", 0, 1, shape=8)
        pm.Deterministic("theta", mu + tau * theta)
        pm.Normal(
            "y",
            mu + tau * theta,
            np.array([15.0, 10, 16, 11, 9, 11, 10, 18]),
            observed=np.array([28.0, 8, -3, 7, -1, 1, 18, 12]),
        )
    return model


def _sample(root: Path, *, overwrite: bool = False, **call) -> tuple[object, dict]:
    with (
        warnings.catch_warnings(),
        cc.cloud(
            eight_schools(), cache=str(root), backend="numpyro", quiet=True, overwrite=overwrite
        ) as run,
    ):
        warnings.simplefilter("ignore")
        tree = pm.sample(**{**CALL, **call})
    return tree, run.last.metadata


def _assert_identical(one, other) -> None:
    for group in ("posterior", "sample_stats"):
        assert sorted(one[group].data_vars) == sorted(other[group].data_vars)
        for name in other[group].data_vars:
            np.testing.assert_array_equal(
                one[group][name].values, other[group][name].values, err_msg=name
            )


def _final_states(root: Path) -> list[str]:
    return sorted(path.name for path in (root / EXTEND_DIR).rglob("draws-*.npz"))


@pytest.fixture(scope="module", autouse=True)
def _no_checkpoints():
    """Checkpoints off unless a test asks (they never change draws: tests/test_resume.py)."""
    before = os.environ.get("CLOUDCACHE_CHECKPOINT_SECONDS")
    os.environ["CLOUDCACHE_CHECKPOINT_SECONDS"] = "off"
    yield
    if before is None:
        del os.environ["CLOUDCACHE_CHECKPOINT_SECONDS"]
    else:
        os.environ["CLOUDCACHE_CHECKPOINT_SECONDS"] = before


def test_the_first_draws_of_a_longer_run_are_those_of_the_shorter_run(tmp_path: Path) -> None:
    """The premise: the step program's floats depend neither on the run's draws nor on its
    chunk boundaries (the deterministics, evaluated by each run's own outputs program over all
    its draws, may differ in the last bit: an extension evaluates them as the longer run does)."""
    short, _ = _sample(tmp_path / "a", draws=150)
    long, _ = _sample(tmp_path / "b", draws=400, overwrite=True)
    for name in ("mu", "tau", "theta_tilde"):
        np.testing.assert_array_equal(short.posterior[name], long.posterior[name][:, :150])
    for name in short.sample_stats.data_vars:
        np.testing.assert_array_equal(short.sample_stats[name], long.sample_stats[name][:, :150])


def test_where_the_step_program_is_called_changes_no_draw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step program of 16-iteration buffers, called 20 times more often, gives the very draws
    of the default one: buffer length and call boundaries change no float."""
    reference, _ = _sample(tmp_path / "a", draws=150)
    KERNELS.clear()
    monkeypatch.setattr(runner, "MAX_CAPACITY", 16)
    try:
        small, _ = _sample(tmp_path / "b", draws=150, overwrite=True)
    finally:
        KERNELS.clear()  # no program of 16-iteration buffers outlives the test
    _assert_identical(small, reference)


@pytest.mark.parametrize(
    "options",
    [{}, {"chain_method": "vectorized", "chains": 3}, {"init": "jitter+adapt_full"}],
    ids=["default", "vectorized", "dense mass"],
)
def test_a_longer_request_samples_only_the_extra_draws(tmp_path: Path, options: dict) -> None:
    _, first = _sample(tmp_path / "cache", draws=150, **options)
    assert "extended" not in first and first["run_key"]
    extended, metadata = _sample(tmp_path / "cache", draws=400, **options)
    assert metadata["extended"] == "extended 150 -> 400 draws"
    assert metadata["run_key"] == first["run_key"]
    fresh, plain = _sample(tmp_path / "fresh", draws=400, overwrite=True, **options)
    assert "extended" not in plain
    _assert_identical(extended, fresh)
    # Only the longest run's final state is kept; it extends again.
    assert _final_states(tmp_path / "cache") == ["draws-000000400.npz"]
    again, metadata = _sample(tmp_path / "cache", draws=1000, **options)
    assert metadata["extended"] == "extended 400 -> 1,000 draws"
    _assert_identical(again, _sample(tmp_path / "fresh", draws=1000, overwrite=True, **options)[0])


@pytest.mark.parametrize(
    "change",
    [{"random_seed": 12}, {"tune": 201}, {"target_accept": 0.9}, {"chains": 3}],
    ids=["seed", "tune", "target_accept", "chains"],
)
def test_only_a_request_that_differs_by_draws_alone_is_extended(
    tmp_path: Path, change: dict
) -> None:
    _sample(tmp_path, draws=150)
    _, metadata = _sample(tmp_path, draws=300, **change)
    assert "extended" not in metadata


def test_fewer_draws_unseeded_and_overwrite_are_not_extended(tmp_path: Path) -> None:
    _sample(tmp_path, draws=300)
    _, fewer = _sample(tmp_path, draws=200)
    assert "extended" not in fewer  # a shorter run is sampled (and the longer one kept)
    assert _final_states(tmp_path) == ["draws-000000300.npz"]
    _, overwritten = _sample(tmp_path, draws=400, overwrite=True)
    assert "extended" not in overwritten
    _sample(tmp_path / "unseeded", draws=100, random_seed=None)
    _, unseeded = _sample(tmp_path / "unseeded", draws=200, random_seed=None)
    assert "extended" not in unseeded and "run_key" not in unseeded
    assert not (tmp_path / "unseeded" / EXTEND_DIR).exists()


@pytest.mark.parametrize("damage", ["torn", "foreign", "wrong shape"])
def test_a_damaged_final_state_is_ignored_with_a_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _sample(tmp_path / "cache", draws=150)
    (stored,) = (tmp_path / "cache" / EXTEND_DIR).rglob("draws-*.npz")
    with np.load(stored, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    if damage == "torn":
        stored.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    else:
        if damage == "foreign":
            record = json.loads(str(arrays["record"][()]))
            record["versions"]["jax"] = "0.0.1"
            arrays["record"] = np.array(json.dumps(record))
        else:
            arrays["leaf_0"] = arrays["leaf_0"][..., :1]
        with stored.open("wb") as handle:
            np.savez(handle, **arrays)
    extended, metadata = _sample(tmp_path / "cache", draws=300)
    assert "extended" not in metadata
    assert "not extending the stored run of 150 draws" in caplog.text
    _assert_identical(extended, _sample(tmp_path / "fresh", draws=300, overwrite=True)[0])
    assert _final_states(tmp_path / "cache") == ["draws-000000300.npz"]


def _command(root: Path, call: dict) -> list[str]:
    return sampling_command(str(root), call)


def _run(root: Path, call: dict, env: dict[str, str]) -> dict:
    return run_sampling(str(root), call, env)[0]


def _assert_same(one: dict, other: dict) -> None:
    for name in ("mu", "theta", "lp"):
        np.testing.assert_array_equal(np.asarray(one[name]), np.asarray(other[name]))


def test_a_run_stored_by_one_process_is_extended_by_another(tmp_path: Path) -> None:
    env = {**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "off"}
    short, long = {**CALL, "draws": 500}, {**CALL, "draws": 1500}
    assert _run(tmp_path / "cache", short, env)["extended"] is None
    extended = _run(tmp_path / "cache", long, env)
    assert extended["extended"] == "extended 500 -> 1,500 draws"
    _assert_same(extended, _run(tmp_path / "fresh", long, env))


def test_an_extension_killed_midway_resumes_bit_identically(tmp_path: Path) -> None:
    """The first checkpoint of an extension holds the stored draws too: resuming it needs
    neither the final state nor the shorter entry."""
    env = {**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "0"}
    short, long = {**CALL, "draws": 300}, {**CALL, "draws": 6000}
    _run(tmp_path / "cache", short, env)
    process = subprocess.Popen(
        _command(tmp_path / "cache", long),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_when(process, lambda: bool(list((tmp_path / "cache" / RESUME_DIR).rglob("state.npz"))))
    assert process.returncode == -signal.SIGKILL, "the extension finished before it was killed"
    for stored in (tmp_path / "cache" / EXTEND_DIR).rglob("draws-*.npz"):
        stored.unlink()  # the resumed run must not depend on it
    resumed = _run(tmp_path / "cache", long, env)
    assert resumed["resumed"] and resumed["resumed"].startswith("resumed at ")
    _assert_same(
        resumed, _run(tmp_path / "fresh", long, {**env, "CLOUDCACHE_CHECKPOINT_SECONDS": "off"})
    )


def test_a_finished_run_whose_entry_was_not_stored_samples_nothing_again(tmp_path: Path) -> None:
    """The final state is kept as soon as sampling ends, before PyMC's checks and the entry
    write: a process killed in between (here: the entry removed, as if it never got written)
    leaves a finished run that the same call takes whole ("resumed at 500 of 500 draws")."""
    env = {**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "off"}
    call = {**CALL, "draws": 500}
    first = _run(tmp_path, call, env)
    entries = [p for p in tmp_path.rglob("*.nc") if not any(s.startswith(".") for s in p.parts)]
    assert len(entries) == 1 and _final_states(tmp_path) == ["draws-000000500.npz"]
    kept = next((tmp_path / EXTEND_DIR).rglob("draws-*.npz"))
    written = kept.stat().st_mtime_ns
    entries[0].unlink()
    again = _run(tmp_path, call, env)
    assert again["resumed"] == "resumed at 500 of 500 draws" and again["extended"] is None
    _assert_same(again, first)
    assert kept.stat().st_mtime_ns == written  # taken as it is, not written again
    assert entries[0].exists()  # and stored this time


def test_a_finished_run_wins_over_an_older_checkpoint_of_the_same_call(tmp_path: Path) -> None:
    """A process killed after its final state was kept leaves a checkpoint from earlier in the
    run too: the finished run is taken whole and the checkpoint removed. (Made here by
    putting the final state of the same call, finished in another folder, beside a checkpoint
    of a killed run.)"""
    env = {**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "0"}
    call = {**CALL, "draws": 4000}
    cache = tmp_path / "cache"
    process = subprocess.Popen(
        sampling_command(str(cache), call),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_when(process, lambda: bool(list((cache / RESUME_DIR).rglob("state.npz"))))
    assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"
    finished = _run(tmp_path / "finished", call, env)
    shutil.copytree(tmp_path / "finished" / EXTEND_DIR, cache / EXTEND_DIR)
    again = _run(cache, call, env)
    assert again["resumed"] == "resumed at 4,000 of 4,000 draws"
    _assert_same(again, finished)
    assert not list((cache / RESUME_DIR).rglob("*.npz"))  # the older checkpoint is gone
