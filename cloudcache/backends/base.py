"""The backend protocol and the registry of backends by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from cloudcache.request import SampleRequest

#: Valid values of ``cloud(backend=...)``.
BACKEND_NAMES: tuple[str, ...] = ("numpyro", "pymc")

#: Valid values of ``cloud(device=...)``.
DEVICE_NAMES: tuple[str, ...] = ("auto", "cpu", "gpu")


class Backend(Protocol):
    """What a sampling backend offers the session."""

    name: str

    def library_versions(self) -> dict[str, str]:
        """Exact versions of the libraries whose major.minor enter the key."""
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


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (one of :data:`BACKEND_NAMES`)."""
    if name == "numpyro":
        from cloudcache.backends.numpyro import NumpyroBackend

        return NumpyroBackend()
    if name == "pymc":
        from cloudcache.backends.pymc import PymcBackend

        return PymcBackend()
    raise ValueError(f"backend must be one of {', '.join(map(repr, BACKEND_NAMES))}; got {name!r}")
