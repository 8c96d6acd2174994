"""JAX's persistent compilation cache, pointed at cloudcache's directory during its own runs.

With it, a new Python process that samples a model compiled before loads the XLA executable
from disk instead of compiling it again.

Where it lives, in order of precedence:

1. a directory the user already gave JAX (``jax.config.jax_compilation_cache_dir`` or the
   ``JAX_COMPILATION_CACHE_DIR`` environment variable) is respected as is, and JAX's settings
   are left alone;
2. ``$CLOUDCACHE_JAX_CACHE_DIR``; the values ``off``, ``0``, ``false``, ``no`` or ``none``
   switch the cache off (cloudcache then leaves JAX's settings alone);
3. the per-user cache directory: ``$XDG_CACHE_HOME/cloudcache/jax`` (default
   ``~/.cache/cloudcache/jax``) on Linux, ``~/Library/Caches/cloudcache/jax`` on macOS,
   ``%LOCALAPPDATA%\\cloudcache\\jax`` on Windows.

In cases 2 and 3 the settings are scoped (:func:`compilation_cache_scope`): around each of
cloudcache's compilations JAX's ``jax_compilation_cache_dir`` points at the directory and
``jax_persistent_cache_min_compile_time_secs`` is 0 (every entry is kept, unless the user set
``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``); afterwards both are put back and JAX's cache is
reset, so the user's own JAX programs compile exactly as they would without cloudcache. The
directory holds executable code: like any JAX compilation cache it must not be writable by
people you do not trust.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from cloudcache.compat.jax import reset_compilation_cache
from cloudcache.util.forks import ForkSafeLock

#: Environment variable: the cache directory, or an off value.
CACHE_DIR_ENV = "CLOUDCACHE_JAX_CACHE_DIR"

#: JAX's own environment variable for the minimum compile time of a cached entry.
MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"

_OFF_VALUES = frozenset({"off", "0", "false", "no", "none"})
_lock = ForkSafeLock(reentrant=True)
_state: dict[str, str | None] = {}
_depth = 0


def default_cache_dir() -> Path:
    """The per-user directory used when nothing else is configured."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cloudcache" / "jax"


def _requested_dir() -> Path | None:
    """The directory cloudcache would use, or None when switched off."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured is not None:
        if configured.strip().lower() in _OFF_VALUES:
            return None
        if configured.strip():
            return Path(configured).expanduser()
    return default_cache_dir()


def _users_dir() -> str | None:
    """The compilation cache directory the user gave JAX, if any (JAX not imported: none)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    return jax.config.jax_compilation_cache_dir or None


def enable_persistent_cache() -> str | None:
    """The directory cloudcache's runs compile into (created); None when the cache is off.

    A directory the user configured for JAX wins; otherwise cloudcache's own directory is
    chosen once per process (or by :func:`set_cache_dir`). JAX's settings are not changed here:
    :func:`compilation_cache_scope` points JAX at the directory for one run at a time.
    """
    with _lock:
        users = _users_dir()
        if users:
            return str(users)
        if "dir" not in _state:
            path = _requested_dir()
            if path is not None:
                path.mkdir(parents=True, exist_ok=True)
            _state["dir"] = None if path is None else str(path)
        return _state["dir"]


def cache_dir() -> str | None:
    """The directory in use: the user's JAX directory, else cloudcache's once chosen (or None)."""
    return _users_dir() or _state.get("dir")


def set_cache_dir(path: str | os.PathLike[str] | None) -> str | None:
    """Use ``path`` for cloudcache's runs from now on (None: switch the cache off for them)."""
    with _lock:
        if path is None:
            _state["dir"] = None
            return None
        Path(path).mkdir(parents=True, exist_ok=True)
        _state["dir"] = str(path)
        return _state["dir"]


@contextlib.contextmanager
def compilation_cache_scope() -> Iterator[str | None]:
    """Point JAX's persistent cache at cloudcache's directory for the block; restore after.

    Yields the directory in use (None: no persistent cache). A directory the user configured
    for JAX, or the cache switched off, leaves JAX's settings alone. Re-entrant: only the
    outermost block changes and restores the settings. While the block runs the settings are
    process-wide, so a compilation in another thread at that moment is cached there too.
    """
    global _depth
    with _lock:
        users = _users_dir() if _depth == 0 else None
        directory = users or enable_persistent_cache()
        if users or directory is None or _depth > 0:
            _depth += 1
            try:
                yield directory
            finally:
                _depth -= 1
            return
        import jax

        saved_min = jax.config.jax_persistent_cache_min_compile_time_secs
        jax.config.update("jax_compilation_cache_dir", directory)
        if MIN_COMPILE_TIME_ENV not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        reset_compilation_cache()  # JAX opens its cache at the next compilation: ours
        _depth += 1
        try:
            yield directory
        finally:
            _depth -= 1
            jax.config.update("jax_compilation_cache_dir", None)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", saved_min)
            reset_compilation_cache()  # the user's next compilation starts as JAX starts


@contextlib.contextmanager
def persistent_cache_off() -> Iterator[None]:
    """JAX's persistent compilation cache off for the block, put back after (the runner's
    kept programs must be compiled, not loaded from it: :mod:`.stored_programs`)."""
    import jax

    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    reset_compilation_cache()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
        reset_compilation_cache()
