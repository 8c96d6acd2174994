"""JAX's persistent compilation cache, switched on for cloudcache's JAX backend.

With it, a new Python process that samples a model compiled before loads the XLA executable
from disk instead of compiling it again.

Where it lives, in order of precedence:

1. a directory the user already gave JAX (``jax.config.jax_compilation_cache_dir`` or the
   ``JAX_COMPILATION_CACHE_DIR`` environment variable) is respected as is;
2. ``$CLOUDCACHE_JAX_CACHE_DIR``; the values ``off``, ``0``, ``false``, ``no`` or ``none``
   switch the cache off (cloudcache then leaves JAX's settings alone);
3. the per-user cache directory: ``$XDG_CACHE_HOME/cloudcache/jax`` (default
   ``~/.cache/cloudcache/jax``) on Linux, ``~/Library/Caches/cloudcache/jax`` on macOS,
   ``%LOCALAPPDATA%\\cloudcache\\jax`` on Windows.

Entries are cached whatever their compile time (``jax_persistent_cache_min_compile_time_secs``
is lowered to 0 unless the user set it). The directory holds executable code: like any JAX
compilation cache it must not be writable by people you do not trust.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

#: Environment variable: the cache directory, or an off value.
CACHE_DIR_ENV = "CLOUDCACHE_JAX_CACHE_DIR"

_OFF_VALUES = frozenset({"off", "0", "false", "no", "none"})
_lock = threading.Lock()
_state: dict[str, str | None] = {}


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


def enable_persistent_cache() -> str | None:
    """Switch JAX's persistent compilation cache on (once per process); return its directory.

    Returns None when the cache is off. A directory already configured for JAX wins.
    """
    with _lock:
        if "dir" in _state:
            return _state["dir"]
        import jax

        existing = jax.config.jax_compilation_cache_dir
        if existing:
            _state["dir"] = str(existing)
            return _state["dir"]
        path = _requested_dir()
        if path is None:
            _state["dir"] = None
            return None
        path.mkdir(parents=True, exist_ok=True)
        _point_jax_at(str(path))
        _state["dir"] = str(path)
        return _state["dir"]


def _point_jax_at(path: str) -> None:
    import jax
    from jax._src import compilation_cache

    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # JAX initialises its cache once, at the first compilation: if something compiled before
    # we set the directory, start it again so the directory takes effect.
    if compilation_cache._cache_initialized or compilation_cache._cache_checked:
        compilation_cache.reset_cache()


def cache_dir() -> str | None:
    """The directory in use, or None when off or not yet enabled."""
    return _state.get("dir")


def set_cache_dir(path: str | os.PathLike[str] | None) -> str | None:
    """Use ``path`` for the persistent compilation cache from now on (None: switch it off)."""
    import jax
    from jax._src import compilation_cache

    with _lock:
        if path is None:
            if _state.get("dir"):
                jax.config.update("jax_compilation_cache_dir", None)
                compilation_cache.reset_cache()
            _state["dir"] = None
            return None
        Path(path).mkdir(parents=True, exist_ok=True)
        _point_jax_at(str(path))
        _state["dir"] = str(path)
        return _state["dir"]
