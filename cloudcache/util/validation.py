"""Argument checks shared by public entry points: each error names the argument and its choices."""

from __future__ import annotations

import math
import os
import re
from typing import Any

#: ``tcp://host:8786``, ``tls://host:8786``, ``inproc://...``, or a bare ``host:port``.
_SCHEDULER_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S+|[^\s/:]+:\d+)$")
_URL = re.compile(r"^(?P<protocol>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)

#: Object-store protocols whose URLs must name a bucket (or container) after ``://``.
BUCKET_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss")
#: Protocols named in error messages (fsspec knows many more).
COMMON_PROTOCOLS = ("s3", "gs", "az", "abfs", "memory", "file")
CACHE_FORMS = (
    "a directory path, or an fsspec URL such as 's3://bucket/prefix', 'gs://bucket/prefix', "
    "'az://container/prefix' or 'memory://name'"
)


def check_cache_location(location: str) -> str:
    """A ``cache=`` path or URL: not blank, no NUL, a known lower-case protocol, a bucket."""
    if not location.strip():
        raise ValueError(f"cache={location!r} is blank; give {CACHE_FORMS}")
    if "\x00" in location:
        raise ValueError(f"cache={location!r} contains a NUL byte; give {CACHE_FORMS}")
    match = _URL.match(location)
    if match is None:
        return location
    protocol, rest = match["protocol"], match["rest"]
    known = ", ".join(repr(name) for name in COMMON_PROTOCOLS)
    if protocol != protocol.lower():
        raise ValueError(
            f"cache={location!r}: protocols are lower case; did you mean "
            f"{protocol.lower() + '://' + rest!r}? Known protocols include {known}"
        )
    import fsspec  # URLs only: a directory path is checked without it

    if protocol not in fsspec.available_protocols():
        raise ValueError(
            f"cache={location!r}: unknown storage protocol {protocol!r}; known protocols "
            f"(lower case) include {known}; give {CACHE_FORMS}"
        )
    if protocol in BUCKET_PROTOCOLS and not rest.strip("/").strip():
        raise ValueError(
            f"cache={location!r} names no bucket; give {protocol}://<bucket>/<prefix>, "
            f"for example '{protocol}://my-bucket/cloudcache'"
        )
    return location


def check_root(root: Any) -> str:
    """A store root: a non-empty path or fsspec URL (str or os.PathLike)."""
    if not isinstance(root, str | os.PathLike):
        raise TypeError(
            f"root must be a directory path or an fsspec URL (str or os.PathLike); "
            f"got {type(root).__name__} {root!r}"
        )
    location = os.fspath(root)
    if not isinstance(location, str) or not location.strip() or "\x00" in location:
        raise ValueError(
            f"root must be a non-empty directory path or fsspec URL without NUL bytes; "
            f"got {location!r}"
        )
    return location


def check_timeout(timeout: Any) -> float | None:
    """``None`` or a positive, finite number of seconds."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(
            f"timeout must be a positive number of seconds (finite) or None; got {timeout!r}"
        )
    return timeout


def check_scheduler_address(executor: Any) -> None:
    """A string ``executor`` must look like a Dask scheduler address."""
    if isinstance(executor, str) and not _SCHEDULER_ADDRESS.match(executor):
        raise ValueError(
            "executor must be None (in-process), a scheduler address such as "
            f"'tcp://host:8786' or 'host:8786', or a distributed.Client; got {executor!r}"
        )
