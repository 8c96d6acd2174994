"""When a backend fails: what hands the call to the next backend, and what reaches the user.

A backend that cannot sample a call says so before the key (``Backend.refusal``) or, found only
once it tried, by raising :class:`~cloudcache.errors.BackendRefused`. Any other exception a
backend other than PyMC's own sampler raises (a compile error of numba or XLA, a library bug
such as nutpie's ``with_data`` on two shared variables of one name) is a failure *of that
backend*, not of the call: :func:`failure_reason` turns it into a one-line reason and the call
goes to the next backend of its chain, ending at PyMC's sampler. Only what PyMC's own sampler
raises, and failures that are no backend's (:data:`REACHES_THE_USER`), reach the caller.

A failure is remembered for the model object, the backend and the request
(:func:`remember_failure`), so the next such call in the process skips the failing backend
before its key, as a refusal does, instead of failing again.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from cloudcache.errors import RemoteExecutionError, SamplerFailure

if TYPE_CHECKING:
    import pymc as pm

    from cloudcache.backends.request import SampleRequest

#: Exceptions that are not a backend's failure to run: a finished run that looks broken
#: (cloudcache's own verdict, nothing is stored) and a Dask cluster's failures.
REACHES_THE_USER: tuple[type[BaseException], ...] = (SamplerFailure, RemoteExecutionError)

#: A reason is cut to this many characters (it is one line of the miss announcement).
REASON_LENGTH = 200

_FAILURES: weakref.WeakKeyDictionary[pm.Model, dict[tuple[str, int, str], str]] = (
    weakref.WeakKeyDictionary()
)


def failure_reason(backend: str, error: BaseException) -> str | None:
    """One line saying how ``backend`` failed (``"it failed (ValueError: ...)"``, read after
    ``"<backend> cannot sample this: "``), or ``None`` when ``error`` must reach the user
    (PyMC's own sampler, :data:`REACHES_THE_USER`, anything not an ``Exception``)."""
    if backend == "pymc" or backend.startswith("pymc:"):
        return None
    if not isinstance(error, Exception) or isinstance(error, REACHES_THE_USER):
        return None
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else "no message"  # not a Rust backtrace, not PyMC's start values
    line = f"it failed ({type(error).__name__}: {text})"
    return line if len(line) <= REASON_LENGTH else line[: REASON_LENGTH - 4] + "...)"


def _request_digest(request: SampleRequest) -> str | None:
    from cloudcache.fingerprint.canonical import content_digest

    try:
        return content_digest(request.key_arguments())
    except Exception:  # a request the key cannot hold is not remembered
        return None


def remember_failure(model: pm.Model, backend: str, request: SampleRequest, reason: str) -> None:
    """Record that ``backend`` failed on this call of ``model`` (in this process)."""
    digest = _request_digest(request)
    if digest is not None:
        key = (backend, len(model.named_vars), digest)
        _FAILURES.setdefault(model, {})[key] = reason


def remembered_failure(model: pm.Model, backend: str, request: SampleRequest) -> str | None:
    """The reason ``backend`` failed on this call of ``model`` before, or ``None``."""
    failures: dict[Any, str] | None = _FAILURES.get(model)
    if not failures:
        return None
    digest = _request_digest(request)
    return None if digest is None else failures.get((backend, len(model.named_vars), digest))
