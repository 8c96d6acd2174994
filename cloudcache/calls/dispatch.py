"""One dispatcher installed on ``pymc.sample`` and its aliases, counted by open block, thread-safe.

While at least one ``cloud()`` block is open anywhere in the process, the public names point at
a dispatcher. The dispatcher looks for an active session in the *calling* context (a
``ContextVar``, so other threads and other models pass straight through to PyMC) and hands the
call to it. Every ``with`` block counts once, so one session entered twice (nested, or in two
threads) is two blocks; when the last block in the process closes, the original functions are
put back. A fork child keeps only the blocks of the thread that forked (the others' threads do
not exist there).
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloudcache.backends.running import inside_backend
from cloudcache.util.forks import ForkSafeLock, after_fork_in_child


class DispatchTarget(Protocol):
    """What the patch needs of a session: whether a call is its own, and answering it."""

    def accepts(self, model: Any) -> bool:
        """Whether a call for ``model`` (``None``: the model of the calling context) is ours."""
        ...

    def handle(
        self, kind: str, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Answer a call of ``kind``; ``function`` is PyMC's original."""
        ...


#: The functions we dispatch, by kind, with every public place they are reachable from.
PATCH_TARGETS: dict[str, tuple[tuple[str, str], ...]] = {
    "sample": (
        ("pymc", "sample"),
        ("pymc.sampling", "sample"),
        ("pymc.sampling.mcmc", "sample"),
    ),
    "sample_prior_predictive": (
        ("pymc", "sample_prior_predictive"),
        ("pymc.sampling", "sample_prior_predictive"),
        ("pymc.sampling.forward", "sample_prior_predictive"),
    ),
    "sample_posterior_predictive": (
        ("pymc", "sample_posterior_predictive"),
        ("pymc.sampling", "sample_posterior_predictive"),
        ("pymc.sampling.forward", "sample_posterior_predictive"),
    ),
    "sample_smc": (
        ("pymc", "sample_smc"),
        ("pymc.smc", "sample_smc"),
        ("pymc.smc.sampling", "sample_smc"),
    ),
    "find_MAP": (
        ("pymc", "find_MAP"),
        ("pymc.tuning", "find_MAP"),
        ("pymc.tuning.starting", "find_MAP"),
    ),
    "fit": (
        ("pymc", "fit"),
        ("pymc.variational", "fit"),
        ("pymc.variational.inference", "fit"),
    ),
}

#: Functions of optional packages (pymc-extras, the ``extras`` extra), by kind, the module that
#: defines each function last. A kind is dispatched once its package has been imported (by the
#: user: importing pymc-extras costs a process ~0.1 s, so cloudcache never does it); each other
#: place is patched where it exists (the layout may differ between releases).
OPTIONAL_PATCH_TARGETS: dict[str, tuple[tuple[str, str], ...]] = {
    "fit_pathfinder": (
        ("pymc_extras", "fit_pathfinder"),
        ("pymc_extras.inference", "fit_pathfinder"),
        ("pymc_extras.inference.pathfinder", "fit_pathfinder"),
        ("pymc_extras.inference.pathfinder.pathfinder", "fit_pathfinder"),
    ),
    "fit_laplace": (
        ("pymc_extras", "fit_laplace"),
        ("pymc_extras.inference", "fit_laplace"),
        ("pymc_extras.inference.laplace_approx.laplace", "fit_laplace"),
    ),
}


@dataclass(eq=False)
class Block:
    """One open ``with`` block of a session, and the thread that opened it."""

    session: DispatchTarget
    thread: int = field(default_factory=threading.get_ident)
    open: bool = True


#: The blocks open in the calling context, innermost last (closed ones are skipped and pruned).
_context_blocks: ContextVar[tuple[Block, ...]] = ContextVar("cloudcache_blocks", default=())
_lock = ForkSafeLock(reentrant=True)
#: Every open block in the process, oldest first: the patch is installed while it is not empty.
_open_blocks: list[Block] = []
_originals: dict[tuple[str, str], Callable[..., Any]] = {}
_dispatchers: dict[str, Callable[..., Any]] = {}
#: The kind each patched place belongs to, while installed.
_patched_kinds: dict[tuple[str, str], str] = {}

logger = logging.getLogger("cloudcache")


def original(kind: str) -> Callable[..., Any]:
    """PyMC's own function for ``kind``, whether or not the patch is installed.

    Raises ``KeyError`` for an optional kind whose package does not import.
    """
    targets = PATCH_TARGETS.get(kind) or available_targets()[kind]
    module_name, attribute = targets[-1]
    with _lock:
        saved = _originals.get((module_name, attribute))
    if saved is not None:
        return saved
    return getattr(importlib.import_module(module_name), attribute)


def available_targets() -> dict[str, tuple[tuple[str, str], ...]]:
    """``PATCH_TARGETS`` and the optional kinds whose package is imported, each with the places
    that exist (the defining one last)."""
    targets = dict(PATCH_TARGETS)
    for kind, places in OPTIONAL_PATCH_TARGETS.items():
        found = tuple(place for place in places if _loaded(*place))
        if found and found[-1] == places[-1]:
            targets[kind] = found
    return targets


def _loaded(module_name: str, attribute: str) -> bool:
    """Whether ``module_name``'s package is imported and the module holds ``attribute``."""
    if module_name.partition(".")[0] not in sys.modules:
        return False
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an installed package that fails to import: not dispatched
        logger.info("%s does not import (%s): its calls are not cached", module_name, error)
        return False
    return callable(getattr(module, attribute, None))


def active_sessions() -> tuple[DispatchTarget, ...]:
    """Sessions with a block open in the calling context, innermost last (a session entered
    twice is listed twice)."""
    return tuple(block.session for block in _context_blocks.get() if block.open)


def open_block(session: DispatchTarget) -> Block:
    """Open a block of ``session`` in the calling context; the first open block installs (a
    later one adds an optional kind whose package was imported since)."""
    block = Block(session)
    with _lock:
        _install()
        _open_blocks.append(block)
    _context_blocks.set((*_context_blocks.get(), block))
    return block


def innermost_block(session: DispatchTarget) -> Block | None:
    """The block of ``session`` a ``with`` exit closes: the innermost open one of the calling
    context, else (a block entered in another context) its newest open one; ``None``: none."""
    for block in reversed(_context_blocks.get()):
        if block.session is session and block.open:
            return block
    with _lock:
        for block in reversed(_open_blocks):
            if block.session is session:
                return block
    return None


def open_blocks(session: DispatchTarget) -> int:
    """How many blocks of ``session`` are open in the process (every thread and context)."""
    with _lock:
        return sum(block.session is session for block in _open_blocks)


def close_block(block: Block) -> None:
    """Close ``block`` (also after an exception); the last open block in the process restores
    PyMC's functions.

    Blocks are counted, not sessions: a session entered twice (nested, or in two threads) keeps
    the patch until both of its blocks are closed, whatever the order they close in.
    """
    try:
        with _lock:
            if block.open:
                block.open = False
                _open_blocks.remove(block)
                if not _open_blocks:
                    _uninstall()
    finally:
        _context_blocks.set(tuple(b for b in _context_blocks.get() if b.open))


def is_installed() -> bool:
    """Whether any cloud() block in the process holds the patch."""
    with _lock:
        return bool(_open_blocks)


def _install() -> None:
    """Patch every available kind not patched yet."""
    for kind, targets in available_targets().items():
        if kind in _dispatchers:
            continue
        for module_name, attribute in targets:
            module = importlib.import_module(module_name)
            _originals[(module_name, attribute)] = getattr(module, attribute)
            _patched_kinds[(module_name, attribute)] = kind
        dispatcher = _make_dispatcher(kind, _originals[targets[-1]])
        _dispatchers[kind] = dispatcher
        for module_name, attribute in targets:
            setattr(importlib.import_module(module_name), attribute, dispatcher)


def _uninstall() -> None:
    for (module_name, attribute), function in _originals.items():
        module = importlib.import_module(module_name)
        if getattr(module, attribute) is _dispatchers.get(_patched_kinds[(module_name, attribute)]):
            setattr(module, attribute, function)
    _originals.clear()
    _dispatchers.clear()
    _patched_kinds.clear()


def _close_other_threads_blocks() -> None:
    """In a fork child: only the forking thread exists, so only its blocks can ever close."""
    here = threading.get_ident()
    for block in [block for block in _open_blocks if block.thread != here]:
        block.open = False
        _open_blocks.remove(block)
    if not _open_blocks and _originals:
        _uninstall()


after_fork_in_child(_close_other_threads_blocks)


def _make_dispatcher(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def dispatcher(*args: Any, **kwargs: Any) -> Any:
        if not inside_backend():
            for block in reversed(_context_blocks.get()):
                if block.open and block.session.accepts(kwargs.get("model")):
                    return block.session.handle(kind, function, args, kwargs)
        return function(*args, **kwargs)

    dispatcher.__cloudcache_dispatcher__ = True  # type: ignore[attr-defined]
    return dispatcher
