"""The exception a backend raises when it finds, only once it tries, that it cannot sample."""

from __future__ import annotations


class BackendRefused(Exception):
    """Raised by ``Backend.sample`` when it finds, only once it tries, that it cannot sample.

    The session then hands the call to PyMC's sampler under that backend's key, with the
    exception's message as the reason. Never raised after any draw was taken.
    """
