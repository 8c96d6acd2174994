"""The backend protocol and the registry of backends by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cloudcache.backends.choose import AutoChoice, auto_choice
from cloudcache.backends.lazy import LazyBackend
from cloudcache.backends.numpyro import plan as numpyro_plan
from cloudcache.backends.nutpie import plan as nutpie_plan

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from cloudcache.calls.request import SampleRequest

#: Valid values of ``cloud(backend=...)``: ``"auto"`` picks one of the samplers per call.
BACKEND_NAMES: tuple[str, ...] = ("auto", "numpyro", "nutpie", "pymc")

#: The backends that really sample (what ``"auto"`` resolves to; valid ``nuts_sampler=``).
SAMPLER_NAMES: tuple[str, ...] = ("numpyro", "nutpie", "pymc")

#: Valid values of ``cloud(device=...)``.
DEVICE_NAMES: tuple[str, ...] = ("auto", "cpu", "gpu")


class Backend(Protocol):
    """What a sampling backend offers the session."""

    name: str

    def library_versions(self) -> dict[str, str]:
        """Exact versions of the libraries whose major.minor enter the key."""
        ...

    def refusal(self, model: pm.Model, request: SampleRequest) -> str | None:
        """Why this backend cannot sample this call (``None``: it can). Cheap: never samples.

        Asked *before* the key is computed, so the key holds the backend that really samples.
        """
        ...

    def sample(
        self,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
    ) -> xr.DataTree:
        """Sample ``model`` as ``request`` asks; ``pymc_sample`` is PyMC's unpatched sampler."""
        ...


#: The JAX and nutpie backends, known by name, versions and refusal; their sampling modules
#: (JAX, NumPyro, nutpie) are imported only when a miss samples with them. Built once: every
#: call, hits included, asks one of them before its key.
LAZY_BACKENDS: dict[str, LazyBackend] = {
    "numpyro": LazyBackend(
        "numpyro",
        "cloudcache.backends.numpyro.backend",
        "NumpyroBackend",
        numpyro_plan.LIBRARIES,
        numpyro_plan.refusal,
    ),
    "nutpie": LazyBackend(
        "nutpie",
        "cloudcache.backends.nutpie.backend",
        "NutpieBackend",
        nutpie_plan.LIBRARIES,
        nutpie_plan.refusal,
    ),
}


class BackendRefused(Exception):
    """Raised by ``Backend.sample`` when it finds, only once it tries, that it cannot sample.

    The session then hands the call to PyMC's sampler under that backend's key, with the
    exception's message as the reason. Never raised after any draw was taken.
    """


@dataclass(frozen=True)
class Resolution:
    """The backend that will sample a call, its id in the key, and why it was chosen."""

    backend: Backend
    backend_id: str
    reason: str = ""
    #: What ``backend="auto"`` chose and why, for the miss line (``auto -> nutpie (CPU, ...)``).
    choice: str = ""


def resolve_backend(
    name: str, model: pm.Model, request: SampleRequest, device: str = "auto"
) -> Resolution:
    """The backend that samples ``request``: an explicit ``nuts_sampler=``, else ``name``.

    ``"auto"`` asks :func:`cloudcache.backends.choose.auto_choice` for an order of preference
    and takes the first backend that does not refuse. A refused call goes to PyMC's own
    sampler; the reason is kept so the call record and the miss line say what sampled and why.
    """
    explicit = request.arguments.get("nuts_sampler")
    if explicit is not None and explicit not in SAMPLER_NAMES:
        return Resolution(get_backend("pymc"), f"pymc:{explicit}")
    if explicit is None and name == "auto":
        return first_willing(auto_choice(model, device), model, request)
    chosen = explicit if explicit is not None else name
    backend = get_backend(chosen)
    reason = backend.refusal(model, request)
    if reason is None or chosen == "pymc":
        return Resolution(backend, chosen)
    return pymc_fallback(f"{chosen} cannot sample this: {reason}")


def first_willing(choice: AutoChoice, model: pm.Model, request: SampleRequest) -> Resolution:
    """The first backend of ``choice.order`` that does not refuse, with the miss-line text."""
    first_refusal = ""
    for name in choice.order:
        backend = get_backend(name)
        refusal = backend.refusal(model, request)
        if refusal is None:
            why = first_refusal or choice.why
            reason = first_refusal if name == "pymc" else ""
            return Resolution(backend, name, reason, choice=f"auto -> {name} ({why})")
        first_refusal = first_refusal or f"{name} cannot sample this: {refusal}"
    raise AssertionError("the pymc backend never refuses")


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
