"""Sample in the calling process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pymc as pm
    import xarray as xr

    from cloudcache.backends.base import Backend
    from cloudcache.backends.request import SampleRequest


class Executor(Protocol):
    """Runs a backend for one request and returns the resulting DataTree."""

    description: str

    def run(
        self,
        backend: Backend,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
        quiet: bool = False,
    ) -> xr.DataTree: ...


class LocalExecutor:
    """The default: call the backend right here."""

    description = "local"

    def run(
        self,
        backend: Backend,
        model: pm.Model,
        request: SampleRequest,
        *,
        device: str,
        pymc_sample: Callable[..., Any],
        quiet: bool = False,
    ) -> xr.DataTree:
        return backend.sample(model, request, device=device, pymc_sample=pymc_sample)
