"""The backends by name, and which one samples a call (``backend=``, ``nuts_sampler=``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloudcache.backends.base import Backend
from cloudcache.backends.choose import AutoChoice, auto_choice
from cloudcache.backends.failures import remembered_failure
from cloudcache.backends.lazy import LazyBackend
from cloudcache.backends.numpyro.plan import NumpyroPlanner
from cloudcache.backends.nutpie.plan import NutpiePlanner

if TYPE_CHECKING:
    import pymc as pm

    from cloudcache.backends.request import SampleRequest

#: Valid values of ``cloud(backend=...)``: ``"auto"`` picks one of the samplers per call.
BACKEND_NAMES: tuple[str, ...] = ("auto", "numpyro", "nutpie", "pymc")

#: The backends that really sample (what ``"auto"`` resolves to; valid ``nuts_sampler=``).
SAMPLER_NAMES: tuple[str, ...] = ("numpyro", "nutpie", "pymc")

#: Valid values of ``cloud(device=...)``.
DEVICE_NAMES: tuple[str, ...] = ("auto", "cpu", "gpu")

#: The JAX and nutpie backends, known by name, versions and refusal; their sampling modules
#: (JAX, NumPyro, nutpie) are imported only when a miss samples with them. Built once: every
#: call, hits included, asks one of them before its key.
LAZY_BACKENDS: dict[str, LazyBackend] = {
    "numpyro": LazyBackend(
        NumpyroPlanner(), "cloudcache.backends.numpyro.backend", "NumpyroBackend"
    ),
    "nutpie": LazyBackend(NutpiePlanner(), "cloudcache.backends.nutpie.backend", "NutpieBackend"),
}


@dataclass(frozen=True)
class Resolution:
    """The backend that will sample a call, its id in the key, and why it was chosen."""

    backend: Backend
    backend_id: str
    reason: str = ""
    #: What ``backend="auto"`` chose and why, for the miss line (``auto -> nutpie (CPU, ...)``).
    choice: str = ""
    #: The backends that sample the call, in order, if this one fails once it tried.
    fallbacks: tuple[str, ...] = ()


def resolve_backend(
    name: str, model: pm.Model, request: SampleRequest, device: str = "auto"
) -> Resolution:
    """The backend that samples ``request``: an explicit ``nuts_sampler=``, else ``name``.

    ``"auto"`` asks :func:`cloudcache.backends.choose.auto_choice` for an order of preference
    and takes the first backend that does not refuse. A refused call goes to PyMC's own
    sampler; the reason is kept so the call record and the miss line say what sampled and why.
    The resolution names the backends that take the call if this one fails once it tried
    (:func:`next_backend`): the rest of the auto order, or PyMC's sampler.
    """
    explicit = request.arguments.get("nuts_sampler")
    if explicit is not None and explicit not in SAMPLER_NAMES:
        return Resolution(get_backend("pymc"), f"pymc:{explicit}")
    if explicit is None and name == "auto":
        return first_willing(auto_choice(model, device), model, request)
    chosen = explicit if explicit is not None else name
    if chosen == "pymc":
        return Resolution(get_backend(chosen), chosen)
    reason = refusal_of(chosen, model, request)
    if reason is None:
        return Resolution(get_backend(chosen), chosen, fallbacks=("pymc",))
    return pymc_fallback(f"{chosen} cannot sample this: {reason}")


def refusal_of(name: str, model: pm.Model, request: SampleRequest) -> str | None:
    """Why backend ``name`` will not sample this call: its refusal, or how it failed on the
    same call of the same model before (:mod:`~cloudcache.backends.failures`)."""
    if name == "pymc":
        return None
    return get_backend(name).refusal(model, request) or remembered_failure(model, name, request)


def first_willing(
    choice: AutoChoice, model: pm.Model, request: SampleRequest, why_not_first: str = ""
) -> Resolution:
    """The first backend of ``choice.order`` that does not refuse, with the miss-line text.

    ``why_not_first``: why an earlier backend (one no longer in the order) does not sample it.
    """
    first_refusal = why_not_first
    for position, name in enumerate(choice.order):
        refusal = refusal_of(name, model, request)
        if refusal is None:
            why = first_refusal or choice.why
            reason = first_refusal if name == "pymc" or why_not_first else ""
            return Resolution(
                get_backend(name),
                name,
                reason,
                choice=f"auto -> {name} ({why})",
                fallbacks=choice.order[position + 1 :],
            )
        first_refusal = first_refusal or f"{name} cannot sample this: {refusal}"
    raise AssertionError("the pymc backend never refuses")


def next_backend(
    failed: Resolution, model: pm.Model, request: SampleRequest, reason: str
) -> Resolution | None:
    """Who samples the call after ``failed``'s backend failed for ``reason`` (``None``: nobody,
    PyMC's own sampler failed)."""
    if not failed.fallbacks:
        return None
    if failed.fallbacks == ("pymc",):
        return pymc_fallback(reason)
    return first_willing(AutoChoice(failed.fallbacks, ""), model, request, reason)


def pymc_fallback(reason: str) -> Resolution:
    """PyMC's own sampler, chosen because another backend refused for ``reason``."""
    return Resolution(get_backend("pymc"), "pymc", reason)


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (one of :data:`SAMPLER_NAMES`)."""
    lazy = LAZY_BACKENDS.get(name)
    if lazy is not None:
        return lazy
    if name == "pymc":
        from cloudcache.backends.pymc import PymcBackend

        return PymcBackend()
    raise ValueError(f"backend must be one of {', '.join(map(repr, SAMPLER_NAMES))}; got {name!r}")
