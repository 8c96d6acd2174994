"""Guarantee 6: every public parameter given a wrong type or value raises an error that names
the parameter and its valid choices (one row per case)."""

from __future__ import annotations

from typing import Any

import pymc as pm
import pytest
from reliability_figures import record_trials

import cloudcache as cc

MODEL = pm.Model(name="args")

#: (parameter, bad value, error type, words the message must contain)
CLOUD_CASES: list[tuple[str, Any, type[Exception], tuple[str, ...]]] = [
    ("model", "radon", TypeError, ("model", "pymc.Model", "None")),
    ("model", 3, TypeError, ("model", "pymc.Model")),
    ("cache", 3, TypeError, ("cache", "True", "False", "'disk'", "fsspec URL", "Store")),
    ("cache", None, TypeError, ("cache", "True", "False")),
    ("cache", 1.5, TypeError, ("cache", "directory path")),
    ("cache", "", ValueError, ("cache", "empty", "True")),
    ("cache", ["disk"], TypeError, ("cache", "'disk'")),
    ("cache", "   ", ValueError, ("cache=", "blank", "directory path", "s3://bucket")),
    ("cache", "/tmp/a\x00b", ValueError, ("cache=", "NUL", "directory path")),
    ("cache", "s3://", ValueError, ("cache=", "no bucket", "s3://<bucket>/<prefix>")),
    ("cache", "gs:///", ValueError, ("cache=", "no bucket", "gs://<bucket>")),
    ("cache", "S3://b/x", ValueError, ("cache=", "lower case", "'s3://b/x'", "'s3'", "'gs'")),
    ("cache", "nosuch://b/x", ValueError, ("cache=", "unknown", "'nosuch'", "'s3'", "lower")),
    ("overwrite", "yes", TypeError, ("overwrite", "True or False")),
    ("overwrite", 1, TypeError, ("overwrite", "True or False")),
    ("overwrite", None, TypeError, ("overwrite", "True or False")),
    ("backend", "jax", ValueError, ("backend", "'numpyro'", "'pymc'")),
    ("backend", None, ValueError, ("backend", "'numpyro'", "'pymc'")),
    ("backend", 1, ValueError, ("backend", "'numpyro'", "'pymc'")),
    ("device", "tpu", ValueError, ("device", "'auto'", "'cpu'", "'gpu'")),
    ("device", None, ValueError, ("device", "'auto'", "'cpu'", "'gpu'")),
    ("quiet", "no", TypeError, ("quiet", "True or False")),
    ("quiet", 0, TypeError, ("quiet", "True or False")),
    ("storage_options", "anon=true", TypeError, ("storage_options", "dict", "None")),
    ("storage_options", [("anon", True)], TypeError, ("storage_options", "dict")),
    ("executor", 1, TypeError, ("executor", "None", "tcp://", "Client")),
    ("executor", 3.0, TypeError, ("executor", "None", "tcp://")),
    ("executor", "my-gpu-box", ValueError, ("executor", "None", "tcp://", "Client")),
    ("executor", "", ValueError, ("executor", "tcp://")),
    ("copy", "yes", TypeError, ("copy", "True or False")),
    ("copy", None, TypeError, ("copy", "True or False")),
    ("explain", "yes", TypeError, ("explain", "True or False")),
    ("explain", None, TypeError, ("explain", "True or False")),
    ("audit", "yes", TypeError, ("audit", "True or False")),
    ("audit", None, TypeError, ("audit", "True or False")),
    ("copy", "deep", TypeError, ("copy", "True or False")),
    ("copy", None, TypeError, ("copy", "True or False")),
    ("timeout", 0, ValueError, ("timeout", "positive", "None")),
    ("timeout", -5, ValueError, ("timeout", "positive", "None")),
    ("timeout", "10", ValueError, ("timeout", "positive", "None")),
    ("timeout", True, ValueError, ("timeout", "positive", "None")),
    ("timeout", float("nan"), ValueError, ("timeout", "finite", "None")),
    ("timeout", float("inf"), ValueError, ("timeout", "finite", "None")),
]


@pytest.mark.parametrize(
    ("parameter", "value", "error", "words"),
    CLOUD_CASES,
    ids=[f"{p}={v!r}" for p, v, _, _ in CLOUD_CASES],
)
def test_cloud_rejects_bad_arguments(
    parameter: str, value: Any, error: type[Exception], words: tuple[str, ...]
) -> None:
    arguments: dict[str, Any] = {"model": MODEL, parameter: value}
    with pytest.raises(error) as raised:
        cc.cloud(**arguments)
    message = str(raised.value)
    assert message.startswith(parameter) or f"{parameter}=" in message or parameter in message
    for word in words:
        assert word in message, (word, message)


STORE_CASES: list[tuple[Any, Any, type[Exception], tuple[str, ...]]] = [
    (cc.MemoryStore, -1, ValueError, ("max_bytes", "non-negative int")),
    (cc.MemoryStore, 1.5, ValueError, ("max_bytes", "non-negative int")),
    (cc.MemoryStore, "1GB", ValueError, ("max_bytes", "non-negative int")),
    (cc.MemoryStore, True, ValueError, ("max_bytes", "non-negative int")),
    (cc.FileStore, 1, TypeError, ("root", "directory path", "fsspec URL")),
    (cc.FileStore, None, TypeError, ("root", "directory path", "fsspec URL")),
    (cc.FileStore, b"/tmp", TypeError, ("root", "directory path")),
    (cc.FileStore, "", ValueError, ("root", "non-empty")),
    (cc.FileStore, "   ", ValueError, ("root", "non-empty")),
    (cc.FileStore, "/tmp/a\x00b", ValueError, ("root", "NUL")),
]


@pytest.mark.parametrize(
    ("store", "value", "error", "words"),
    STORE_CASES,
    ids=[f"{s.__name__}({v!r})" for s, v, _, _ in STORE_CASES],
)
def test_stores_reject_bad_arguments(
    store: Any, value: Any, error: type[Exception], words: tuple[str, ...]
) -> None:
    with pytest.raises(error) as raised:
        store(value)
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def test_table_covers_every_public_parameter() -> None:
    import inspect

    parameters = set(inspect.signature(cc.cloud).parameters)
    assert parameters == {case[0] for case in CLOUD_CASES}
    record_trials("bad arguments", "parametrized table", len(CLOUD_CASES) + len(STORE_CASES), 0)


def test_good_arguments_are_accepted(tmp_path: Any) -> None:
    """The checks must not refuse valid values (a check that rejects everything proves nothing)."""
    for executor in (None,):
        cc.cloud(MODEL, cache=False, executor=executor, timeout=2.5)
    cc.cloud(MODEL, cache=str(tmp_path), overwrite=True, backend="pymc", device="cpu", quiet=True)
    cc.cloud(MODEL, cache=cc.MemoryStore(0), storage_options={})
    cc.FileStore(tmp_path)
    cc.MemoryStore(0)
