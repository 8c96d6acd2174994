"""Where a miss is sampled: in this process (default) or on a Dask cluster."""

from __future__ import annotations

from typing import Any

from cloudcache.executors.local import Executor, LocalExecutor

EXECUTOR_CHOICES = (
    "None (in-process), a scheduler address such as 'tcp://host:8786', a distributed.Client, "
    "or an executor object with a run() method (such as a DaskExecutor)"
)


def resolve_executor(executor: Any, **options: Any) -> Executor:
    """Return the executor ``executor`` names (see :data:`EXECUTOR_CHOICES`)."""
    if executor is None:
        return LocalExecutor()
    if isinstance(executor, str) or type(executor).__name__ == "Client":
        from cloudcache.executors.dask import DaskExecutor

        return DaskExecutor(executor, **options)
    if callable(getattr(executor, "run", None)) and hasattr(executor, "description"):
        return executor
    raise TypeError(
        f"executor must be {EXECUTOR_CHOICES}; got {type(executor).__name__} {executor!r}"
    )


__all__ = ["EXECUTOR_CHOICES", "Executor", "LocalExecutor", "resolve_executor"]
