"""The libraries a new process's result needs, imported in a thread while the sampler runs.

A NumPyro run leaves the GIL free while it samples; a new process's first result needs 1-2 s
of imports ``import pymc`` did not make. The result is built and written with ArviZ's
``from_dict`` (and, with Dask installed, the parts of Dask xarray imports); PyMC's convergence
checks, which run only once the entry is written, import ArviZ's statistics and SciPy's
(0.7 s). One thread imports them in that order: the caller waits for the first part before it
builds and writes the result, and for the rest before the checks, so a resume or an extension
that samples for less time than the imports take writes its result while the checks'
libraries are still being imported. Building and writing a result import nothing either part
imports (``tests/test_compat.py``), so the two threads never wait on each other's imports.
"""

from __future__ import annotations

import sys
import threading

from cloudcache.compat.arviz import building_libraries, checking_libraries, import_libraries
from cloudcache.util.background import in_background


class ResultImports:
    """The imports of one run's result; ``checks``: whether PyMC's convergence checks run."""

    def __init__(self, *, checks: bool) -> None:
        self._building = building_libraries()
        self._checking = checking_libraries() if checks else ()
        self._built = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start importing what is not imported yet (call once the sampler is about to run)."""
        if all(name in sys.modules for name in self._building + self._checking):
            return
        self._thread = in_background(self._import)

    def _import(self) -> None:
        try:
            import_libraries(self._building)
        finally:
            self._built.set()
        import_libraries(self._checking)

    def wait_for_building(self) -> None:
        """Return once the result can be built and written without importing these."""
        if self._thread is not None:
            self._built.wait()

    def wait(self) -> None:
        """Return once every import has finished."""
        if self._thread is not None:
            self._thread.join()
