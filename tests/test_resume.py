"""Checkpointed, resumable NumPyro misses: a real sampling process killed with SIGKILL, resumed.

The reference is an uninterrupted run of the same call into another cache folder; draws are
compared exactly (the runner's programs and their inputs are the same, so the floats are too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

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
