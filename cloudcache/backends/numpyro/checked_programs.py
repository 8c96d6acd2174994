"""Which NumPyro programs passed their start-point check, remembered across processes.

The first run of a model structure in a process checks that the program taking the data as
arguments agrees with the constants-only program at the start points (see
``backend.prepare_run``). In a new process that check costs about 0.4 CPU-s: a second graph is
converted, traced, lowered and loaded. A passed check is recorded as an empty marker file in
``cloudcache-checked/`` inside JAX's persistent compilation cache directory, named by a digest
of the graph key, the argument signature and the JAX, jaxlib, PyTensor and NumPyro versions, so
a later process skips the check exactly as the same process would. Nothing is recorded when
that cache is off or when the graph key holds identity-keyed values (they mean nothing in
another process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from pathlib import Path

from cloudcache.backends.numpyro.jax_cache import cache_dir
from cloudcache.util.versions import installed_versions

#: Sub-directory of JAX's compilation cache holding the markers.
MARKERS = "cloudcache-checked"

_passed: set[Hashable] = set()


def _marker(digest: str, signature: Hashable) -> Path | None:
    directory = cache_dir()
    if directory is None:
        return None
    # The conversion to JAX is PyTensor's and NumPyro's as much as JAX's: a new version of any
    # of them is a new program.
    versions = installed_versions("jax", "jaxlib", "pytensor", "numpyro")
    text = f"{digest}|{signature!r}|{sorted(versions.items())!r}"
    return Path(directory) / MARKERS / hashlib.sha256(text.encode()).hexdigest()


def passed(digest: str, signature: Hashable, portable: bool) -> bool:
    """Whether the check passed for this program, in this process or (``portable``) earlier."""
    if (digest, signature) in _passed:
        return True
    marker = _marker(digest, signature) if portable else None
    if marker is None or not marker.is_file():
        return False
    _passed.add((digest, signature))
    return True


def record_pass(digest: str, signature: Hashable, portable: bool) -> None:
    """Remember that the check passed (on disk too when ``portable``; best effort)."""
    _passed.add((digest, signature))
    marker = _marker(digest, signature) if portable else None
    if marker is None:
        return
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # a read-only cache directory only costs the next process the check
        pass


def forget_all() -> None:
    """Forget this process's passes (tests; markers on disk stay)."""
    _passed.clear()
