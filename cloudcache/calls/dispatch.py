"""One dispatcher installed on ``pymc.sample`` and its aliases, reference-counted and thread-safe.

While at least one ``cloud()`` block is open anywhere in the process, the public names point at
a dispatcher. The dispatcher looks for an active session in the *calling* context (a
``ContextVar``, so other threads and other models pass straight through to PyMC) and hands the
call to it. When the last block closes, the original functions are put back.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol

from cloudcache.backends.running import inside_backend


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

_active_sessions: ContextVar[tuple[DispatchTarget, ...]] = ContextVar(
    "cloudcache_sessions", default=()
)
_lock = threading.RLock()
_install_count = 0
_originals: dict[tuple[str, str], Callable[..., Any]] = {}
_dispatchers: dict[str, Callable[..., Any]] = {}


def original(kind: str) -> Callable[..., Any]:
    """PyMC's own function for ``kind``, whether or not the patch is installed."""
    module_name, attribute = PATCH_TARGETS[kind][-1]
    with _lock:
        saved = _originals.get((module_name, attribute))
    if saved is not None:
        return saved
    return getattr(importlib.import_module(module_name), attribute)


def active_sessions() -> tuple[DispatchTarget, ...]:
    """Sessions open in the calling context, innermost last."""
    return _active_sessions.get()


def push_session(session: DispatchTarget) -> object:
    """Make ``session`` active in this context and install the patch; returns a token."""
    _active_sessions.set((*_active_sessions.get(), session))
    install()
    return session


def pop_session(token: object) -> None:
    """Undo :func:`push_session` (also after an exception) and uninstall when last.

    The session is removed by identity, so blocks closed out of order (outer before inner) or
    in another thread never drop a different session or leave this one behind.
    """
    try:
        _active_sessions.set(tuple(s for s in _active_sessions.get() if s is not token))
    finally:
        uninstall()


def install() -> None:
    """Point every target at its dispatcher (reference-counted)."""
    global _install_count
    with _lock:
        if _install_count == 0:
            for kind, targets in PATCH_TARGETS.items():
                for module_name, attribute in targets:
                    module = importlib.import_module(module_name)
                    _originals[(module_name, attribute)] = getattr(module, attribute)
                dispatcher = _make_dispatcher(kind, _originals[targets[-1]])
                _dispatchers[kind] = dispatcher
                for module_name, attribute in targets:
                    setattr(importlib.import_module(module_name), attribute, dispatcher)
        _install_count += 1


def uninstall() -> None:
    """Drop one reference; the last one restores PyMC's original functions."""
    global _install_count
    with _lock:
        if _install_count == 0:
            return
        _install_count -= 1
        if _install_count == 0:
            for (module_name, attribute), function in _originals.items():
                module = importlib.import_module(module_name)
                if getattr(module, attribute) is _dispatchers.get(_kind_of(module_name, attribute)):
                    setattr(module, attribute, function)
            _originals.clear()
            _dispatchers.clear()


def is_installed() -> bool:
    """Whether any cloud() block holds the patch."""
    with _lock:
        return _install_count > 0


def _kind_of(module_name: str, attribute: str) -> str:
    for kind, targets in PATCH_TARGETS.items():
        if (module_name, attribute) in targets:
            return kind
    raise KeyError((module_name, attribute))


def _make_dispatcher(kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def dispatcher(*args: Any, **kwargs: Any) -> Any:
        if not inside_backend():
            for session in reversed(_active_sessions.get()):
                if session.accepts(kwargs.get("model")):
                    return session.handle(kind, function, args, kwargs)
        return function(*args, **kwargs)

    dispatcher.__cloudcache_dispatcher__ = True  # type: ignore[attr-defined]
    return dispatcher
