"""Installed library versions, looked up once per process (metadata lookups cost milliseconds)."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version


@functools.cache
def installed_version(package: str) -> str:
    """The installed version of ``package``, or ``"missing"``."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "missing"


def installed_versions(*packages: str) -> dict[str, str]:
    """``{package: version}`` for each of ``packages``."""
    return {package: installed_version(package) for package in packages}
