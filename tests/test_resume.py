"""Checkpointed, resumable NumPyro misses: a real sampling process killed with SIGKILL, resumed.

The reference is an uninterrupted run of the same call into another cache folder; draws are
compared exactly (the runner's programs and their inputs are the same, so the floats are too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from resume_runs import kill_when, run_sampling, sampling_command

from cloudcache.stores.checkpoints import RESUME_DIR

#: A run long enough to be killed after its first checkpoint (about a second on this machine).
CALL = {"draws": 4000, "tune": 200, "chains": 2, "random_seed": 11, "progressbar": False}


def _command(root: Path, call: dict) -> list[str]:
    return sampling_command(str(root), call)


def _run(root: Path, call: dict, env: dict[str, str]) -> dict:
    return run_sampling(str(root), call, env)[0]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """Checkpoint at every chunk boundary (the interval is tunable; 0 makes tests quick)."""
    return {**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "0"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict:
    return _run(tmp_path_factory.mktemp("reference"), CALL, env)


def _state_files(root: Path) -> list[Path]:
    return list((root / RESUME_DIR).rglob("state.npz")) if (root / RESUME_DIR).exists() else []


def _saved_draws(root: Path) -> bool:
    """Whether a checkpoint's state names at least one segment of draws."""
    for state in _state_files(root):
        try:
            with np.load(state, allow_pickle=False) as archive:
                if json.loads(str(archive["record"][()]))["segments"]:
                    return True
        except (OSError, ValueError, KeyError):
            continue  # being replaced at this moment
    return False


def test_a_killed_run_resumes_with_bit_identical_draws(
    tmp_path: Path, env: dict[str, str], uninterrupted: dict
) -> None:
    process = subprocess.Popen(
        _command(tmp_path, CALL), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(process, lambda: bool(_state_files(tmp_path)))
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not list(tmp_path.rglob("*.nc")), "a killed run stored no entry"
    assert _state_files(tmp_path), "the checkpoint survives the kill"

    resumed = _run(tmp_path, CALL, env)
    assert resumed["resumed"] and resumed["resumed"].startswith("resumed at ")
    for name in ("mu", "theta", "lp"):
        np.testing.assert_array_equal(np.asarray(resumed[name]), np.asarray(uninterrupted[name]))
    assert not _state_files(tmp_path), "the checkpoint is removed once the result is stored"
    assert _run(tmp_path, CALL, env)["hit"]


def test_checkpoints_never_change_the_draws(
    tmp_path: Path, env: dict[str, str], uninterrupted: dict
) -> None:
    """With no checkpoints at all the run gives the same draws as with one per chunk."""
    plain = _run(tmp_path, CALL, {**env, "CLOUDCACHE_CHECKPOINT_SECONDS": "off"})
    assert plain["resumed"] is None
    np.testing.assert_array_equal(np.asarray(plain["theta"]), np.asarray(uninterrupted["theta"]))
    assert not (tmp_path / RESUME_DIR).exists() or not _state_files(tmp_path)


SHORTER = {**CALL, "draws": 600}


@pytest.fixture(scope="module")
def shorter_reference(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict:
    root = tmp_path_factory.mktemp("shorter")
    return _run(root, SHORTER, {**env, "CLOUDCACHE_CHECKPOINT_SECONDS": "off"})


@pytest.mark.parametrize("damage", ["torn", "foreign", "missing segment"])
def test_a_damaged_checkpoint_is_ignored_and_the_run_starts_over(
    tmp_path: Path, env: dict[str, str], shorter_reference: dict, damage: str
) -> None:
    shorter, reference = SHORTER, shorter_reference
    # A checkpoint of the same call, left behind by a run killed after its last save.
    process = subprocess.Popen(
        _command(tmp_path / "cache", shorter),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_when(process, lambda: bool(_saved_draws(tmp_path / "cache")))  # a checkpoint has draws
    states = _state_files(tmp_path / "cache")
    if not states:
        pytest.skip("the run finished before it could be killed")
    state = states[0]
    if damage == "torn":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "foreign":
        with np.load(state, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        record = json.loads(str(arrays["record"][()]))
        record["chunk"] = record["chunk"] + 1
        arrays["record"] = np.array(json.dumps(record))
        with state.open("wb") as handle:
            np.savez(handle, **arrays)
    else:
        for segment in state.parent.glob("draws-*.npz"):
            segment.unlink()
    again = _run(tmp_path / "cache", shorter, env)
    assert again["resumed"] is None
    np.testing.assert_array_equal(np.asarray(again["theta"]), np.asarray(reference["theta"]))


def test_a_checkpoint_that_cannot_be_written_never_stops_the_run(
    tmp_path: Path, env: dict[str, str], uninterrupted: dict
) -> None:
    """Checkpoints are written in the background; when writing fails (here ``.resume`` is a
    plain file, so no checkpoint folder can be made), the run goes on without checkpoints and
    returns, and stores, exactly the uninterrupted draws."""
    (tmp_path / RESUME_DIR).write_text("not a folder")
    done = subprocess.run(
        _command(tmp_path, CALL), capture_output=True, text=True, timeout=600, env=env, check=True
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Traceback" not in done.stderr
    assert answer["hit"] is False and answer["resumed"] is None
    assert answer["mu"] == uninterrupted["mu"] and answer["lp"] == uninterrupted["lp"]
    assert (tmp_path / RESUME_DIR).read_text() == "not a folder"  # nothing removed but ours
    assert _run(tmp_path, CALL, env)["hit"] is True  # the result was stored


class _HeldFolder:
    """A real local checkpoint folder whose third and later writes wait until ``release`` is
    set: a store that has become slow. A write held 20 s lets every write go and says so."""

    def __init__(self, root: Path) -> None:
        from cloudcache.stores.checkpoints import LocalFolder

        self.inner = LocalFolder(str(root), "held")
        self.release = threading.Event()
        self.writes: list[str] = []
        self.held_too_long = False

    @property
    def path(self) -> str:
        return self.inner.path

    def write(self, name: str, payload: bytes) -> None:
        self.writes.append(name)
        if len(self.writes) > 2 and not self.release.wait(20):
            self.held_too_long = True
            self.release.set()
        self.inner.write(name, payload)

    def archive(self, name: str) -> Any:
        return self.inner.archive(name)

    def written_at(self, name: str) -> float | None:
        return self.inner.written_at(name)

    def remove_all(self) -> None:
        self.inner.remove_all()


def _in_process_run(folder: Any) -> dict[str, Any]:
    """A real NumPyro run of the eight-schools test model in this process, its checkpoints
    in ``folder`` (``None``: none); its draws."""
    import pymc as pm
    import pymc.sampling.mcmc as mcmc

    from cloudcache.backends.numpyro.backend import prepare_run
    from cloudcache.backends.numpyro.chunked_run import run_chunks
    from cloudcache.backends.numpyro.plan import plan_request
    from cloudcache.backends.numpyro.runner import prng_keys
    from cloudcache.calls.request import normalize_sample_call
    from cloudcache.stores.checkpoints import checkpointing

    with pm.Model() as model:  # the subprocesses' eight schools
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta = pm.Normal("theta", mu, tau, shape=8)
        sigma = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])
        pm.Normal("y", theta, sigma, observed=np.array([28.0, 8, -3, 7, -1, 1, 18, 12]))
    request = normalize_sample_call(mcmc.sample, (), {**CALL, "draws": 1500, "model": model})
    prepared = prepare_run(model, plan_request(request), 11, "cpu")
    with checkpointing(folder):
        ran = run_chunks(prepared, prng_keys(prepared.seeds))
    return {"ran": ran, **ran.draws}


def test_a_slow_checkpoint_save_never_holds_the_sampler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an interval, a boundary reached while the save before is still being written is
    passed by: the run samples to its end while a save is held, starts no second save
    meanwhile, and gives the draws of a run without checkpoints."""
    from cloudcache.stores.checkpoints import CheckpointFolder

    monkeypatch.setenv("CLOUDCACHE_CHECKPOINT_SECONDS", "0.000001")  # every boundary is due
    held = _HeldFolder(tmp_path)
    try:
        run = _in_process_run(CheckpointFolder(str(tmp_path), "held", storage=held))
        writes_while_held = len(held.writes)
    finally:
        held.release.set()
    run.pop("ran").saving.wait()
    assert not held.held_too_long  # the sampler finished while the save was held
    assert writes_while_held == 3  # the first save's two files, then the held one alone
    plain = _in_process_run(None)
    plain.pop("ran")
    assert set(run) == set(plain)
    for name, values in plain.items():
        np.testing.assert_array_equal(run[name], values)
