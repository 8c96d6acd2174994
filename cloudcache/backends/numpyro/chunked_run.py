"""One run of the compiled programs, chunk by chunk, checkpointed and resumable.

The run is always the same sequence of programs: ``init``, then ``step`` once per chunk (chunk
boundaries fixed by the request), then ``outputs``. When the cache path keeps checkpoints for
the call (:func:`cloudcache.stores.checkpoints.active_folder`), the state and the draws made so
far are saved at the first chunk boundary after warm-up and then whenever
``CLOUDCACHE_CHECKPOINT_SECONDS`` (default 0.25) have passed since the last save. A run that finds
a checkpoint of its own structure goes on from it; as the programs and their inputs are the
same, the draws are bit-identical to those of an uninterrupted run.

A run that finds no checkpoint but a stored *shorter* run of the same request
(:func:`cloudcache.stores.final_states.active_final_states`: same everything but ``draws``)
goes on from that run's final state and samples only the extra draws. The step program gives
the same floats whatever the chunk boundaries and whatever the run's ``draws`` (checked by
``tests/test_extend.py``), so the first draws of a longer run are those of a shorter one; the
deterministics of every draw are then evaluated by the longer run's own ``outputs`` program, as
a fresh run would. A finished run keeps its final state for the next extension.

A Ctrl-C (SIGINT) during a run that keeps checkpoints is deferred to the end of the step call in
progress (:mod:`cloudcache.util.interrupts`): the state and every draw so far are saved there,
then ``KeyboardInterrupt`` is raised, and the same call resumes from that point. A second
Ctrl-C stops at once (the last checkpoint stays).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudcache.backends.numpyro.checkpoint_writer import CheckpointWriter, Snapshot
from cloudcache.backends.numpyro.plan import RUNNER_REVISION, RunPlan
from cloudcache.backends.numpyro.progress import progress_bar, tick
from cloudcache.backends.numpyro.runner import STAT_NAMES
from cloudcache.stores.checkpoints import active_folder
from cloudcache.stores.final_states import FinalState, active_final_states, extended_text
from cloudcache.util.interrupts import Interrupt, deferred_interrupt
from cloudcache.util.versions import installed_versions

if TYPE_CHECKING:
    from cloudcache.backends.numpyro.prepared import PreparedRun

#: Seconds of sampling between two checkpoints (after the one that follows warm-up). A save
#: writes only the draws since the last one, in the background, so saving often writes no
#: more bytes (the writer's CPU time over a 150,000-draw eight-schools run: 0.125 s, 0.128 s
#: at 1 s) and a killed run loses less (about 1 s at 1 s).
CHECKPOINT_SECONDS_ENV = "CLOUDCACHE_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 0.25
#: Said on the first Ctrl-C of a run that keeps checkpoints.
INTERRUPTED = (
    "cloudcache: interrupted: saving the run at the end of the current step, then stopping "
    "(Ctrl-C again stops at once, keeping the last checkpoint)"
)


def checkpoint_seconds() -> float:
    """The checkpoint interval: ``CLOUDCACHE_CHECKPOINT_SECONDS`` or 0.25 (``off``: none)."""
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
    """Post-warm-up positions and stats, ``(chains, draws, ...)`` per name, written into
    buffers of the run's full length as they come: a checkpoint's segment and the final result
    are views of them, so no draw is copied again (joining the parts at every save and at the
    end copied every draw twice more, ~1 s on a 150,000-draw eight-schools run)."""

    total: int
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    count: int = 0
    saved_count: int = 0

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Start from ``arrays``, the draws of a checkpoint (already saved)."""
        self.add(arrays)
        self.saved_count = self.count

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        """Append ``arrays`` (``(chains, n, ...)`` each, ``n`` the same for all)."""
        made = next((int(a.shape[1]) for a in arrays.values()), 0)
        if self.count + made > self.total:
            raise ValueError(f"{self.count + made} draws for a run of {self.total}")
        for name, array in arrays.items():
            buffer = self.buffers.get(name)
            if buffer is None:
                shape = (array.shape[0], self.total, *array.shape[2:])
                buffer = self.buffers[name] = np.empty(shape, array.dtype)
            buffer[:, self.count : self.count + made] = array
        self.count += made

    def take_pending(self) -> dict[str, np.ndarray]:
        """The draws made since the last save (views), now counted as saved. The views stay
        valid while the run goes on: later draws are written after them."""
        segment = {name: b[:, self.saved_count : self.count] for name, b in self.buffers.items()}
        self.saved_count = self.count
        return segment

    def all(self) -> dict[str, np.ndarray]:
        """Every draw made, ``(chains, draws, ...)`` per name."""
        return {name: buffer[:, : self.count] for name, buffer in self.buffers.items()}


def run_record(run: PreparedRun) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by ``run``: its exact program structure,
    and its ``draws``, ``tune`` and ``chains`` in plain words (``cloudcache ls --partial``)."""
    from cloudcache.backends.numpyro.runner import sampler_key

    plan = run.plan
    record = _record(run, sampler_key(run.graph, _signature(run), plan, run.layout))
    return {**record, "draws": plan.draws, "tune": plan.tune, "chains": plan.chains}


def extension_record(run: PreparedRun) -> dict[str, Any]:
    """What a stored finished run must match to be extended by ``run``: :func:`run_record`
    without ``draws`` (the structure's draw count and the chunk length that follows from it)."""
    from cloudcache.backends.numpyro.runner import sampler_key

    any_draws = dataclasses.replace(run.plan, draws=0)
    record = _record(run, sampler_key(run.graph, _signature(run), any_draws, run.layout))
    del record["chunk"]
    return record


def _record(run: PreparedRun, key: Any) -> dict[str, Any]:
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
    """What the run produced: outputs and stats ``(chains, draws, ...)``, where it resumed or
    the draws of the stored run it extended; its final state and every draw (positions and
    stats, as kept for a later extension)."""

    outputs: Any
    stats: dict[str, np.ndarray]
    resumed_at: int | None
    extended_from: int | None = None
    final_state: list[np.ndarray] = field(default_factory=list)
    draws: dict[str, np.ndarray] = field(default_factory=dict)
    #: The checkpoint save still under way when sampling ended (not waited for: the final
    #: state supersedes it); :func:`keep_final_state` waits for it.
    saving: CheckpointWriter = field(default_factory=lambda: CheckpointWriter(None))


def resumed_text(run: PreparedRun, ran: RunOutput) -> str:
    """``"resumed at 600 of 1,000 draws"`` for a run that went on from a checkpoint
    (``"resumed in warm-up at 300 of 1,000"`` from one saved at a Ctrl-C in warm-up)."""
    at, tune = ran.resumed_at or 0, run.plan.tune
    if at < tune:
        return f"resumed in warm-up at {at:,} of {tune:,}"
    return f"resumed at {at - tune:,} of {run.plan.draws:,} draws"


def progress_text(run: PreparedRun, ran: RunOutput) -> tuple[str, str] | None:
    """What the result says about where the run started: ``("resumed", "resumed at 600 of
    1,000 draws")``, ``("extended", "extended 1,000 -> 2,000 draws")`` or ``None``."""
    if ran.resumed_at is not None:
        return "resumed", resumed_text(run, ran)
    if ran.extended_from is not None:
        return "extended", extended_text(ran.extended_from, run.plan.draws)
    return None


def run_chunks(
    run: PreparedRun, keys: np.ndarray, sampling: Callable[[], None] | None = None
) -> RunOutput:
    """Run ``run``'s programs to the end, from its checkpoint when there is one.

    ``sampling`` is called once the starting point is ready (checkpoint or stored run read,
    state restored), just before the first step: what the caller does meanwhile in a thread
    then overlaps the sampler (which leaves the GIL free) and not these Python-heavy reads.
    """
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
    state = None
    if saved is not None and saved.iteration <= total:
        try:
            state = _restored(programs.state, saved.state)
        except ValueError as error:
            folder.warn(str(error))
    draws = Draws(total=plan.draws)
    extended_from = None
    stored = _stored_run(run)
    if stored is not None and state is not None:
        if saved.iteration >= plan.tune + stored.draws:
            stored = None  # the checkpoint is further along
        else:  # the stored run is: its own checkpoints start afresh
            folder.clear()
            state = None
    if stored is not None and stored.draws == plan.draws:
        # This very run finished but its result was not stored (killed while PyMC's checks
        # ran or the entry was written, or the write failed): nothing is left to sample.
        state = _restored(programs.state, stored.state)
        start = resumed_at = total
        draws.add(stored.arrays)
    elif stored is not None:
        state = _restored(programs.state, stored.state)
        start, resumed_at, extended_from = plan.tune + stored.draws, None, stored.draws
        draws.add(stored.arrays)  # pending: the run's first checkpoint saves them too
    elif state is not None:
        start, resumed_at = saved.iteration, saved.iteration
        draws.restore(saved.draws)
    else:
        state, start, resumed_at = programs.init(keys, run.init, data), 0, None
    interval = checkpoint_seconds() if folder is not None else float("inf")
    saving = folder if interval < float("inf") else None  # "off": no checkpoint is saved
    with (
        progress_bar(
            plan.chains * total,
            f"Sampling {plan.chains} chains on {run.layout.describe()}",
            enabled=plan.progressbar,
            completed=plan.chains * start,
        ),
        deferred_interrupt(INTERRUPTED, enabled=saving is not None) as interrupt,
    ):
        writer = CheckpointWriter(saving)
        if sampling is not None:
            sampling()
        try:
            state = _run_to_end(run, state, data, start, draws, writer, record, interval, interrupt)
        except BaseException:
            writer.wait()  # nothing is written after the run raises
            raise
    try:
        kept = draws.all()
        positions = tuple(kept[f"value_{n}"] for n in range(len(run.init)))
        stats = {name[5:]: array for name, array in kept.items() if name.startswith("stat_")}
        outputs = jax.device_get(programs.outputs(positions, data))
        final = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(jax.device_get(state))]
    except BaseException:
        writer.wait()
        raise
    return RunOutput(outputs, stats, resumed_at, extended_from, final, kept, writer)


def _restored(structure: Any, leaves: list[np.ndarray]) -> Any:
    """The sampler state of ``structure`` (``ShapeDtypeStruct`` leaves) from saved ``leaves``,
    placed as the programs expect; ``ValueError`` when a leaf's shape or dtype differs."""
    import jax

    wanted, treedef = jax.tree_util.tree_flatten(structure)
    _check_leaves(leaves, wanted)
    return jax.tree_util.tree_unflatten(
        treedef, [jax.device_put(v, s.sharding) for v, s in zip(leaves, wanted, strict=True)]
    )


def _stored_run(run: PreparedRun) -> FinalState | None:
    """The longest stored finished run of this request with at most its draws (the same
    number: this run finished before, its result was not stored), if it fits the sampler
    exactly (anything else: one line, and the run samples everything)."""
    import jax

    states = active_final_states()
    if states is None:
        return None
    stored = states.longest_up_to(run.plan.draws, extension_record(run))
    if stored is None:
        return None
    try:
        _check_leaves(stored.state, jax.tree_util.tree_leaves(run.executable.state))
        _check_draws(stored.arrays, run)
    except ValueError as error:
        states.warn(stored.draws, run.plan.draws, str(error))
        return None
    return stored


def _check_leaves(leaves: list[np.ndarray], wanted: list[Any]) -> None:
    """``ValueError`` unless ``leaves`` have the shapes and dtypes of the sampler's state."""
    if len(leaves) != len(wanted):
        raise ValueError(f"{len(leaves)} state leaves, the sampler has {len(wanted)}")
    for value, want in zip(leaves, wanted, strict=True):
        value = np.asarray(value)
        if value.shape != tuple(want.shape) or value.dtype != want.dtype:
            raise ValueError(f"a state leaf is {value.dtype}{value.shape}, not {want.dtype}")


def _check_draws(arrays: dict[str, np.ndarray], run: PreparedRun) -> None:
    """``ValueError`` unless ``arrays`` are exactly the positions and stats a run keeps."""
    names = {f"value_{n}" for n in range(len(run.init))} | {f"stat_{s}" for s in STAT_NAMES}
    if set(arrays) != names:
        raise ValueError(f"its draws are {', '.join(sorted(arrays))}")
    for n, init in enumerate(run.init):
        position = arrays[f"value_{n}"]
        if position.shape[:1] + position.shape[2:] != init.shape or position.dtype != init.dtype:
            raise ValueError(f"its positions value_{n} are {position.dtype}{position.shape}")


def keep_final_state(run: PreparedRun, ran: RunOutput) -> None:
    """Keep ``ran``'s final state for a later, longer request (when the store keeps them); a
    failing save only logs: the result does not depend on it."""
    try:
        states = active_final_states()
        if states is None or (ran.resumed_at or 0) >= run.plan.tune + run.plan.draws:
            return  # nothing kept, or the run came whole from its kept final state
        states.save(run.plan.draws, ran.final_state, ran.draws, extension_record(run))
    except Exception as error:
        logging.getLogger("cloudcache").info("cannot keep the final state (%s)", error)
    finally:
        ran.saving.wait()  # the last checkpoint save, if one was still under way


def _run_to_end(
    run: PreparedRun,
    state: Any,
    data: Any,
    start: int,
    draws: Draws,
    writer: CheckpointWriter,
    record: dict[str, Any],
    interval: float,
    interrupt: Interrupt,
) -> Any:
    """Step from iteration ``start`` to the end, keeping the draws and saving checkpoints
    (``writer`` writes them in the background; the last one may still be under way when this
    returns); returns the final state. A Ctrl-C (``interrupt``) stops the run after the step
    call in progress: its state and every draw so far are saved, then ``KeyboardInterrupt``
    is raised."""
    import jax

    programs, plan = run.executable, run.plan
    total = plan.tune + plan.draws
    last_save = time.monotonic()
    warmup_saved = start >= plan.tune  # a resumed run was saved after its warm-up already
    while start < total:
        end = start + min(programs.chunk, total - start)  # the next checkpoint boundary
        while start < end:
            _stop_if_interrupted(interrupt, writer, state, draws, start, record, plan)
            done = min(programs.capacity, end - start)
            state, (positions, stats) = programs.step(state, data, np.int64(done))
            first = max(0, plan.tune - start)  # where the draws begin in this call
            if first < done:
                positions, stats = jax.device_get((positions, stats))
                kept = {f"value_{n}": np.asarray(p)[:, first:done] for n, p in enumerate(positions)}
                kept.update({f"stat_{k}": np.asarray(v)[:, first:done] for k, v in stats.items()})
                draws.add(kept)
            elif plan.progressbar:
                jax.block_until_ready(state)  # the bar shows finished warm-up, not queued calls
            tick(plan.chains * done)
            start += done
        # A periodic save never waits for the one before (a slow store must not hold the
        # sampler): while it is still being written the boundary is passed by. ``0`` saves
        # every boundary, waiting if it must.
        periodic = time.monotonic() - last_save >= interval and (interval == 0 or not writer.busy)
        due = (not warmup_saved and start >= plan.tune) or periodic
        if writer.folder is not None and start < total and due:
            writer.save(_snapshot(start, state, draws), record)
            warmup_saved, last_save = True, time.monotonic()
    _stop_if_interrupted(interrupt, writer, state, draws, start, record, plan)
    return state


def _stop_if_interrupted(
    interrupt: Interrupt,
    writer: CheckpointWriter,
    state: Any,
    draws: Draws,
    iteration: int,
    record: dict[str, Any],
    plan: RunPlan,
) -> None:
    """After a Ctrl-C: save the run at ``iteration`` (between two step calls: the programs
    give the same floats wherever a call ends) and raise ``KeyboardInterrupt``, as the Ctrl-C
    would have. A save that fails leaves the last checkpoint as it was."""
    if not interrupt.requested:
        return
    log = logging.getLogger("cloudcache")
    writer.wait()  # the save in progress, if any, first
    if writer.folder is not None:
        error = writer.save_now(_snapshot(iteration, state, draws), record)
        if error is not None:
            log.warning("cloudcache: cannot save the run (%s); its last checkpoint stays", error)
        else:
            where = (
                f"{iteration - plan.tune:,} of {plan.draws:,} draws"
                if iteration >= plan.tune
                else f"warm-up {iteration:,} of {plan.tune:,}"
            )
            log.warning("cloudcache: saved the run at %s; the same call resumes from there", where)
    raise KeyboardInterrupt


def _complete(saved: dict[str, np.ndarray], expected: int) -> bool:
    """Whether every saved array holds exactly the ``expected`` draws made before the state."""
    return all(array.shape[1] == max(0, expected) for array in saved.values())


def _snapshot(iteration: int, state: Any, draws: Draws) -> Snapshot:
    """What a checkpoint at ``iteration`` writes: the state's leaves on the host and the draws
    made since the last save (now counted as saved)."""
    import jax

    first = draws.saved_count
    segment = draws.take_pending()
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(jax.device_get(state))]
    return Snapshot(iteration, leaves, segment, first)
