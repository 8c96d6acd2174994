"""A bounded, counted, in-process cache of compiled artefacts, shared by the backends.

Each backend keeps one (``numpyro.runner.KERNELS``, ``nutpie.compiled.COMPILED``), keyed by the
model's *structure*, so a new seed, new same-shaped data or a model rebuilt (or cloudpickled to
a worker) from the same code finds the artefact compiled earlier in the process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from cloudcache.util.forks import ForkSafeLock

#: Constant arrays with at least this many elements become data the compiled artefact takes at
#: call time (observed arrays, covariates), so new values of the same shape reuse it.
LIFT_CONSTANT_SIZE = 64

#: How many compiled executables one process keeps (least recently used evicted first).
DEFAULT_MAX_ENTRIES = 16


@dataclass
class KernelCache:
    """Bounded LRU of compiled executables, with counters for tests and benchmarks."""

    max_entries: int = DEFAULT_MAX_ENTRIES
    compilations: int = 0
    compile_seconds: float = 0.0
    hits: int = 0
    _entries: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict, repr=False)
    _lock: ForkSafeLock = field(default_factory=ForkSafeLock, repr=False)

    def get_or_compile(self, key: Hashable, compile_fn: Callable[[], Any]) -> Any:
        """Return the executable for ``key``, compiling it with ``compile_fn`` on a miss."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        start = time.perf_counter()
        executable = compile_fn()
        elapsed = time.perf_counter() - start
        with self._lock:
            self.compilations += 1
            self.compile_seconds += elapsed
            self._entries[key] = executable
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return executable

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every executable (counters are kept)."""
        with self._lock:
            self._entries.clear()
