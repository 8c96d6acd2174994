"""One run of the compiled programs, chunk by chunk, checkpointed and resumable.

The run is always the same sequence of programs: ``init``, then ``step`` once per chunk (chunk
boundaries fixed by the request), then ``outputs``. When the cache path keeps checkpoints for
the call (:func:`cloudcache.stores.checkpoints.active_folder`), the state and the draws made so
far are saved at the first chunk boundary after warm-up and then whenever
``CLOUDCACHE_CHECKPOINT_SECONDS`` (default 2) have passed since the last save. A run that finds
a checkpoint of its own structure goes on from it; as the programs and their inputs are the
same, the draws are bit-identical to those of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudcache.backends.numpyro.plan import RUNNER_REVISION
from cloudcache.backends.numpyro.progress import progress_bar
from cloudcache.backends.numpyro.runner import progress_stride
from cloudcache.stores.checkpoints import CheckpointFolder, active_folder
from cloudcache.util.versions import installed_versions

if TYPE_CHECKING:
    from cloudcache.backends.numpyro.prepared import PreparedRun

#: Seconds of sampling between two checkpoints (after the one that follows warm-up).
CHECKPOINT_SECONDS_ENV = "CLOUDCACHE_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 2.0


def checkpoint_seconds() -> float:
    """The checkpoint interval: ``CLOUDCACHE_CHECKPOINT_SECONDS`` or 2 (``off``: none)."""
    configured = os.environ.get(CHECKPOINT_SECONDS_ENV, "").strip().lower()
    if not configured:
        return DEFAULT_CHECKPOINT_SECONDS
    if configured in ("off", "never", "none"):
        return float("inf")
    try:
        seconds = float(configured)
    except ValueError:
        raise ValueError(
            f"{CHECKPOINT_SECONDS_ENV} must be a number of seconds or 'off'; got {configured!r}"
        ) from None
    if seconds < 0:
        raise ValueError(f"{CHECKPOINT_SECONDS_ENV} must be >= 0; got {configured!r}")
    return seconds


@dataclass
class Draws:
    """Post-warm-up positions and stats, ``(chains, draws, ...)``, kept and not yet saved."""

    saved: dict[str, np.ndarray] = field(default_factory=dict)
    pending: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        for name, array in arrays.items():
            self.pending.setdefault(name, []).append(array)

    def saved_count(self) -> int:
        return next((int(a.shape[1]) for a in self.saved.values()), 0)

    def take_pending(self) -> dict[str, np.ndarray]:
        """The pending draws as one segment, moved to the saved ones."""
        segment = {name: np.concatenate(parts, axis=1) for name, parts in self.pending.items()}
        self.pending = {}
        for name, array in segment.items():
            previous = self.saved.get(name)
            self.saved[name] = array if previous is None else np.concatenate([previous, array], 1)
        return segment

    def all(self) -> dict[str, np.ndarray]:
        self.take_pending()
        return self.saved


def run_record(run: PreparedRun) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by ``run``: its exact program structure."""
    from cloudcache.backends.numpyro.runner import sampler_key

    key = sampler_key(run.graph, _signature(run), run.plan, run.layout)
    return {
        "revision": RUNNER_REVISION,
        "structure": json.dumps(key, default=str),
        "chunk": run.executable.chunk,
        "seeds": [int(seed) for seed in run.seeds],
        "start": _digest(run.init),
        "data": _digest(run.data),
        "versions": installed_versions("jax", "jaxlib", "numpyro", "pytensor", "pymc"),
    }


def _signature(run: PreparedRun) -> Any:
    from cloudcache.backends.numpyro.runner import Signature

    def sig(arrays: Any) -> tuple[tuple[tuple[int, ...], str], ...]:
        return tuple((tuple(np.shape(a)), np.asarray(a).dtype.str) for a in arrays)

    return Signature(values=sig(a[0] for a in run.init), data=sig(run.data))


def _digest(arrays: Any) -> str:
    import xxhash

    digest = xxhash.xxh3_128()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class RunOutput:
    """What the run produced: outputs and stats ``(chains, draws, ...)``, where it resumed."""

    outputs: Any
    stats: dict[str, np.ndarray]
    resumed_at: int | None


def resumed_text(run: PreparedRun, ran: RunOutput) -> str:
    """``"resumed at 600 of 1,000 draws"`` for a run that went on from a checkpoint."""
    done = max(0, (ran.resumed_at or 0) - run.plan.tune)
    return f"resumed at {done:,} of {run.plan.draws:,} draws"


def run_chunks(run: PreparedRun, keys: np.ndarray) -> RunOutput:
    """Run ``run``'s programs to the end, from its checkpoint when there is one."""
    import jax

    programs, plan = run.executable, run.plan
    total = plan.tune + plan.draws
    data = jax.device_put(tuple(run.data), programs.data_sharding)  # once, not once per chunk
    folder = active_folder()
    record = run_record(run) if folder is not None else {}
    saved = folder.load(record) if folder is not None else None
    if saved is not None and not _complete(saved.draws, saved.iteration - plan.tune):
        folder.warn("its draws do not cover its iterations")
        saved = None
    draws = Draws()
    if saved is not None and saved.iteration <= total:
        leaves, treedef = jax.tree_util.tree_flatten(programs.state)
        state = jax.tree_util.tree_unflatten(
            treedef,
            [jax.device_put(v, s.sharding) for v, s in zip(saved.state, leaves, strict=True)],
        )
        start, resumed_at = saved.iteration, saved.iteration
        draws.saved = dict(saved.draws)
    else:
        state, start, resumed_at = programs.init(keys, run.init, data), 0, None
    interval = checkpoint_seconds() if folder is not None else float("inf")
    stride = progress_stride(plan)
    with progress_bar(
        plan.chains * (total // stride * stride),
        f"Sampling {plan.chains} chains on {run.layout.describe()}",
        enabled=plan.progressbar,
        completed=plan.chains * (start // stride * stride),
    ):
        _run_to_end(run, state, data, start, draws, folder, record, interval)
    kept = draws.all()
    positions = tuple(kept[f"value_{n}"] for n in range(len(run.init)))
    stats = {name[5:]: array for name, array in kept.items() if name.startswith("stat_")}
    outputs = jax.device_get(programs.outputs(positions, data))
    return RunOutput(outputs, stats, resumed_at)


def _run_to_end(
    run: PreparedRun,
    state: Any,
    data: Any,
    start: int,
    draws: Draws,
    folder: CheckpointFolder | None,
    record: dict[str, Any],
    interval: float,
) -> None:
    """Step from iteration ``start`` to the end, keeping the draws and saving checkpoints."""
    import jax

    programs, plan = run.executable, run.plan
    total = plan.tune + plan.draws
    last_save = time.monotonic()
    warmup_saved = start >= plan.tune  # a resumed run was saved after its warm-up already
    while start < total:
        done = min(programs.chunk, total - start)
        state, (positions, stats) = programs.step(state, data, np.int64(start), np.int64(done))
        first = max(0, plan.tune - start)  # where the draws begin in this chunk
        if first < done:
            positions, stats = jax.device_get((positions, stats))
            chunk = {f"value_{n}": np.asarray(p)[:, first:done] for n, p in enumerate(positions)}
            chunk.update({f"stat_{k}": np.asarray(v)[:, first:done] for k, v in stats.items()})
            draws.add(chunk)
        start += done
        due = (not warmup_saved and start >= plan.tune) or time.monotonic() - last_save >= interval
        if folder is not None and start < total and due:
            if not _save(folder, state, draws, start, record):
                folder, interval = None, float("inf")  # no partial checkpoint is ever left
            warmup_saved, last_save = True, time.monotonic()


def _complete(saved: dict[str, np.ndarray], expected: int) -> bool:
    """Whether every saved array holds exactly the ``expected`` draws made before the state."""
    return all(array.shape[1] == max(0, expected) for array in saved.values())


def _save(
    folder: CheckpointFolder, state: Any, draws: Draws, iteration: int, record: dict[str, Any]
) -> bool:
    """Save a checkpoint. A failing save removes what was saved and returns False: the run goes
    on without checkpoints (a full disk must not stop it)."""
    import logging

    import jax

    first = draws.saved_count()
    segment = draws.take_pending()
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(jax.device_get(state))]
    try:
        folder.save(iteration, leaves, segment, first, record)
    except Exception as error:
        logging.getLogger("cloudcache").info("cannot save a checkpoint (%s); going on", error)
        folder.clear()
        return False
    return True
