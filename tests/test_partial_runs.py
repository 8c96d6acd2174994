"""Interrupted runs: Ctrl-C (a real SIGINT) on a real sampling process, and the command line on
the partial state it leaves (``ls --partial``, ``rm``, ``clear``, ``prune``, ``verify``).

One process of ``tests/test_resume.py``'s call is interrupted after its first checkpoint; the
checkpoint it saves at the interrupt is resumed, and the draws are compared exactly with an
uninterrupted run. A finished shorter run of the same request adds an entry and its final state.
Each command-line test works on its own copy of that cache.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from test_resume import CALL, SHORTER, _command, _run, _saved_draws, _state_files

from cloudcache.cli import app
from cloudcache.stores.checkpoints import RESUME_DIR
from cloudcache.stores.final_states import EXTEND_DIR
from cloudcache.stores.maintenance.partial import RunFolder, progress

#: One checkpoint after warm-up, then none until the interrupt: the save at the interrupt is
#: then the only one that can hold more draws.
ONE_SAVE = {**os.environ, "CLOUDCACHE_CHECKPOINT_SECONDS": "3600"}


def _record(root: Path) -> dict:
    with np.load(_state_files(root)[0], allow_pickle=False) as archive:
        return json.loads(str(archive["record"][()]))


def _interrupt(root: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run the call, send SIGINT once its first checkpoint holds draws; the process's result
    and the iteration of that first checkpoint."""
    process = subprocess.Popen(
        _command(root, CALL),
        env=ONE_SAVE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not _saved_draws(root) and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.01)
        first = _record(root)["iteration"] if _state_files(root) else -1
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done, first


@pytest.fixture(scope="module")
def interrupted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess, int]:
    """A cache with the checkpoint of a run stopped by Ctrl-C, and a finished shorter run
    (an entry and the final state it left)."""
    root = tmp_path_factory.mktemp("interrupted") / "cache"
    done, first = _interrupt(root)
    if done.returncode == 0:
        pytest.skip("the run finished before the interrupt reached it")
    _run(root, SHORTER, ONE_SAVE)
    return root, done, first


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run(tmp_path_factory.mktemp("reference"), CALL, ONE_SAVE)


@pytest.fixture
def cache(interrupted, tmp_path: Path) -> Path:
    """A private copy of the interrupted cache (links copied as links)."""
    return Path(shutil.copytree(interrupted[0], tmp_path / "cache", symlinks=True))


def invoke(*arguments: object, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in arguments], input=input)


def checkpoint_folders(root: Path) -> list[Path]:
    """The real checkpoint folders (none reached through a link)."""
    found = (root / RESUME_DIR).glob("*/*")
    return sorted(p for p in found if p.is_dir() and not (p.is_symlink() or p.parent.is_symlink()))


def final_state_files(root: Path) -> list[Path]:
    return sorted((root / EXTEND_DIR).glob("*/*/draws-*.npz"))


def backdate(path: Path, seconds: float) -> None:
    """Make every file under ``path`` (or ``path`` itself) ``seconds`` old."""
    stamp = time.time() - seconds
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (stamp, stamp), follow_symlinks=False)


# -- Ctrl-C -----------------------------------------------------------------------------
def test_ctrl_c_raises_keyboard_interrupt_and_saves_the_draws_so_far(interrupted) -> None:
    root, done, first = interrupted
    assert done.returncode == -signal.SIGINT, done.stderr[-2000:]
    assert "KeyboardInterrupt" in done.stderr
    assert "saved the run at" in done.stderr
    assert not list(root.glob("*/draws4000_*.nc")), "an interrupted run stores no entry"
    record = _record(root)
    assert record["iteration"] > first, "the interrupt saved a checkpoint beyond the last one"
    assert record["iteration"] <= CALL["tune"] + CALL["draws"]


def test_the_same_call_resumes_from_the_interrupt_with_identical_draws(
    cache: Path, interrupted, uninterrupted: dict
) -> None:
    saved = _record(cache)["iteration"] - CALL["tune"]
    resumed = _run(cache, CALL, ONE_SAVE)
    assert resumed["resumed"] == f"resumed at {saved:,} of {CALL['draws']:,} draws"
    for name in ("mu", "theta", "lp"):
        np.testing.assert_array_equal(np.asarray(resumed[name]), np.asarray(uninterrupted[name]))
    assert not checkpoint_folders(cache), "the checkpoint is removed once the result is stored"


PYMC_SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import numpy as np, pymc as pm
    import cloudcache as cc

    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        pm.Normal("y", mu, 1, observed=np.array([1.0, 2.0, 3.0]))
    with cc.cloud(model, cache=sys.argv[1], backend="pymc") as run:
        tree = pm.sample(draws=int(sys.argv[2]), tune=50, chains=1, cores=1, random_seed=1,
                         progressbar=False, compute_convergence_checks=False)
    print(json.dumps({"draws": tree["posterior"].sizes["draw"], "location": run.last.location}))
    """
)


def test_ctrl_c_on_pymc_s_sampler_never_stores_the_draws_it_returns(tmp_path: Path) -> None:
    """PyMC's sampler returns the draws so far on a KeyboardInterrupt (or, when the signal
    lands in compiled code, raises): either way no entry of the full request is stored."""
    draws = 50_000
    process = subprocess.Popen(
        [sys.executable, "-c", PYMC_SCRIPT, str(tmp_path), str(draws)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:  # PyMC names the step methods just before its loop
            seen.append(line)
            if line.startswith("NUTS: ["):
                break
        # The assertions hold wherever the signal lands; a moment into the loop (a 50,000-draw
        # run takes seconds) PyMC usually catches it and returns the draws so far.
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = "".join(seen) + err
    stored = list(tmp_path.glob("*/*.nc"))
    for entry in stored:
        with xr.open_datatree(entry, engine="h5netcdf") as tree:
            assert tree["posterior"].sizes["draw"] == draws, "a stored entry is whole"
    if process.returncode == 0:
        result = json.loads(out.strip().splitlines()[-1])
        if result["draws"] < draws:
            assert result["location"] == "uncached" and not stored
            assert "the sampler stopped early" in err
    else:
        assert not stored, err[-2000:]


# -- ls --partial -----------------------------------------------------------------------
def test_ls_partial_lists_the_interrupted_run_with_its_progress(cache: Path) -> None:
    record = _record(cache)
    folder = checkpoint_folders(cache)[0]
    result = invoke("ls", "--partial", "-c", cache)
    assert result.exit_code == 0, result.output
    progress = f"{record['iteration'] - CALL['tune']:,} of {CALL['draws']:,} draws"
    assert progress in result.output
    assert folder.name[:16] in result.output and "ago" in result.output
    assert "final states kept for extending finished runs: 1 file," in result.output

    rows = json.loads(invoke("ls", "--partial", "--json", "-c", cache).stdout)
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["prefix"], row["status"], row["error"]) == (
        "model",
        folder.name,
        "ok",
        None,
    )
    assert (row["iteration"], row["tune"], row["draws"], row["chains"]) == (
        record["iteration"],
        CALL["tune"],
        CALL["draws"],
        CALL["chains"],
    )
    assert row["draws_done"] == record["iteration"] - CALL["tune"]
    assert row["size"] == sum(p.stat().st_size for p in folder.iterdir())
    assert row["age_seconds"] >= 0


@pytest.mark.parametrize(
    ("record", "said"),
    [
        ({"iteration": 300, "tune": 1000, "draws": 4000}, "warm-up: 300 of 1,000"),
        ({"iteration": 3400, "tune": 1000, "draws": 4000}, "2,400 of 4,000 draws"),
        ({"iteration": 3400}, "at iteration 3,400"),
        ({"iteration": "3400"}, "?"),
    ],
)
def test_progress_is_what_the_record_says(record: dict, said: str) -> None:
    assert progress(RunFolder("/nowhere", RESUME_DIR, "m", "0" * 32, [], record)) == said


def test_ls_without_partial_never_lists_partial_state(cache: Path) -> None:
    rows = json.loads(invoke("ls", "--json", "-c", cache).stdout)
    assert [row["draws"] for row in rows] == [SHORTER["draws"]]


class Unpickled:
    """Unpickling this touches a marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("damage", ["torn", "pickled", "no state", "missing segment"])
def test_a_torn_or_foreign_checkpoint_is_listed_never_unpickled(
    cache: Path, tmp_path: Path, damage: str
) -> None:
    folder = checkpoint_folders(cache)[0]
    state = folder / "state.npz"
    marker = tmp_path / "unpickled"
    if damage == "torn":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "pickled":
        with state.open("wb") as handle:
            np.savez(handle, record=np.array([Unpickled(marker)], dtype=object))
        assert pickle.loads(pickle.dumps(Unpickled(tmp_path / "probe"))) is None
        assert (tmp_path / "probe").exists()  # the payload does what it says when unpickled
    elif damage == "no state":
        state.unlink()
    else:
        next(folder.glob("draws-*.npz")).unlink()
    listed = invoke("ls", "--partial", "-c", cache)
    assert listed.exit_code == 0, listed.output
    assert "TORN" in listed.output and "1 torn or foreign" in listed.output
    row = json.loads(invoke("ls", "--partial", "--json", "-c", cache).stdout)[0]
    assert row["status"] == "torn" and row["error"] and row["progress"] is None

    backdate(folder, 120)  # older than a minute: not a run saving it right now
    checked = invoke("verify", "-c", cache)
    assert checked.exit_code == 1 and "BROKEN" in checked.output and "checkpoint" in checked.output
    fixed = invoke("verify", "--fix", "-c", cache)
    assert fixed.exit_code == 0, fixed.output
    assert not folder.exists()
    assert not marker.exists(), "nothing was unpickled"
    assert final_state_files(cache), "the final state is whole: kept"


def test_ls_partial_on_an_object_store_without_checkpoints_lists_none() -> None:
    """Object stores keep checkpoints too (tests/test_object_resume.py lists them on S3)."""
    url = f"memory://partial-{time.monotonic_ns()}"
    fsspec.filesystem("memory").mkdir(url[len("memory://") :])
    result = invoke("ls", "--partial", "-c", url)
    assert result.exit_code == 0
    assert "no interrupted runs" in result.output
    assert json.loads(invoke("ls", "--partial", "--json", "-c", url).stdout) == []


def test_a_linked_run_folder_is_neither_listed_nor_followed(cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(checkpoint_folders(cache)[0], outside)
    (cache / RESUME_DIR / "model" / ("f" * 32)).symlink_to(outside, target_is_directory=True)
    (cache / RESUME_DIR / "linked").symlink_to(outside.parent, target_is_directory=True)
    rows = json.loads(invoke("ls", "--partial", "--json", "-c", cache).stdout)
    assert [row["prefix"] for row in rows] == [checkpoint_folders(cache)[0].name]
    assert invoke("clear", "--yes", "-c", cache).exit_code == 0
    assert (outside / "state.npz").exists(), "nothing outside the root is removed"
    assert not checkpoint_folders(cache)


# -- rm ---------------------------------------------------------------------------------
def test_rm_of_a_checkpoint_prefix_removes_the_interrupted_run(cache: Path) -> None:
    folder = checkpoint_folders(cache)[0]
    result = invoke("rm", folder.name[:8], "-c", cache)
    assert result.exit_code == 0, result.output
    assert "removed the checkpoint of an interrupted run" in result.output
    assert not folder.exists() and not checkpoint_folders(cache)
    assert list(cache.glob("*/*.nc")) and final_state_files(cache), "nothing else removed"


def test_rm_of_an_entry_removes_its_checkpoint_and_final_state(cache: Path) -> None:
    entry = next(cache.glob("*/*.nc"))
    rows = json.loads(invoke("ls", "--json", "-c", cache).stdout)
    key = rows[0]["key"]
    # A checkpoint of the entry's own key (left by an earlier, interrupted run of it).
    other = checkpoint_folders(cache)[0]
    own = other.parent / key[:32]
    shutil.copytree(other, own)
    result = invoke("rm", key[:10], "-c", cache)
    assert result.exit_code == 0, result.output
    assert "removed its checkpoint" in result.output and "removed its final state" in result.output
    assert not entry.exists() and not own.exists() and not final_state_files(cache)
    assert other.exists(), "the checkpoint of another key stays"


def test_rm_of_an_unknown_prefix_removes_nothing(cache: Path) -> None:
    before = sorted(cache.rglob("*"))
    result = invoke("rm", "0123abcd", "-c", cache)
    assert result.exit_code == 1 and "no entry or interrupted run" in result.output
    assert sorted(cache.rglob("*")) == before


# -- clear ------------------------------------------------------------------------------
def test_clear_asks_naming_the_partial_state_and_removes_it(cache: Path) -> None:
    refused = invoke("clear", "-c", cache, input="n\n")
    assert refused.exit_code == 1
    assert "1 checkpoint of an interrupted run" in refused.output
    assert "1 final-state file kept for extending runs" in refused.output
    assert checkpoint_folders(cache) and final_state_files(cache)
    result = invoke("clear", "-c", cache, input="y\n")
    assert result.exit_code == 0, result.output
    assert not list(cache.glob("*/*.nc"))
    assert not checkpoint_folders(cache) and not final_state_files(cache)
    assert not list((cache / RESUME_DIR).rglob("*.npz"))


# -- prune ------------------------------------------------------------------------------
def test_prune_removes_a_stale_checkpoint_by_age(cache: Path) -> None:
    folder = checkpoint_folders(cache)[0]
    backdate(folder, 3 * 86400)
    result = invoke("prune", "--older-than", "2d", "-c", cache)
    assert result.exit_code == 0, result.output
    assert not folder.exists()
    assert list(cache.glob("*/*.nc")) and final_state_files(cache), "recent entries stay"


def test_prune_keep_counts_entries_and_takes_their_final_state(cache: Path) -> None:
    backdate(cache, 120)
    result = invoke("prune", "--keep", "0", "-c", cache)
    assert result.exit_code == 0, result.output
    assert not list(cache.glob("*/*.nc")) and not final_state_files(cache)
    assert checkpoint_folders(cache), "--keep counts entries only"


def test_prune_max_size_counts_partial_state(cache: Path) -> None:
    backdate(cache, 120)
    entry_bytes = sum(p.stat().st_size for p in cache.glob("*/*.nc"))
    result = invoke("prune", "--max-size", str(entry_bytes), "--json", "-c", cache)
    assert result.exit_code == 0, result.output
    removed = json.loads(result.stdout)["removed"]
    assert removed, "entries alone fit the limit: the partial state pushed the total over it"
    total = sum(
        p.stat().st_size for p in cache.rglob("*") if p.is_file() and ".locks" not in str(p)
    )
    assert total <= entry_bytes


def test_prune_removes_a_final_state_whose_entry_is_gone_and_spares_recent_state(
    cache: Path,
) -> None:
    for entry in cache.glob("*/*.nc"):
        entry.unlink()
    final = final_state_files(cache)[0]
    backdate(cache, 0)  # everything written just now: a run may be going on
    result = invoke("prune", "--max-size", "0", "--dry-run", "-c", cache)
    assert result.exit_code == 0 and "would free 0 B" in result.output, "recent state is spared"
    backdate(final, 120)
    result = invoke("prune", "--older-than", "1min", "-c", cache)
    assert result.exit_code == 0, result.output
    assert not final.exists() and checkpoint_folders(cache)


# -- verify -----------------------------------------------------------------------------
def test_verify_reads_checkpoints_and_final_states(cache: Path) -> None:
    backdate(cache, 120)
    result = invoke("verify", "--json", "-c", cache)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["checked"], report["checked_partial"], report["problems"]) == (1, 2, [])


def test_verify_fix_removes_a_torn_final_state_and_stale_temp_files(cache: Path) -> None:
    final = final_state_files(cache)[0]
    final.write_bytes(final.read_bytes()[:100])
    temp = checkpoint_folders(cache)[0] / ".state.npz.0123abcd.tmp"
    temp.write_bytes(b"partial")
    backdate(cache, 120)
    result = invoke("verify", "--fix", "-c", cache)
    assert result.exit_code == 0, result.output
    assert "final state torn or foreign" in result.output
    assert "temp file left by an interrupted write" in result.output
    assert not final.exists() and not temp.exists()
    assert (checkpoint_folders(cache)[0] / "state.npz").exists(), "a whole checkpoint stays"
