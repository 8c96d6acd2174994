"""Issue 21, point 4: an object store that failed is skipped by every block of the process.

A real loopback socket that accepts connections and never answers plays a stalled S3 endpoint.
The first ``cloud(cache=url)`` block pays the read deadline once; the next block, with a store
object of its own for the same location, must skip the store at once instead of waiting again
(docs/stores.md: a failed store is skipped for 30 s). A location is the URL *and* its endpoint:
the same bucket through another endpoint is tried normally.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pymc as pm
import pytest
from reliability_figures import record_trials
from reliability_workers import sample_kwargs, tiny_model

import cloudcache as cc
from cloudcache.errors import StoreError
from cloudcache.stores.base import EntryRef
from cloudcache.stores.files import FileStore

pytest.importorskip("s3fs")

DEADLINE = 3.0
#: Store time (the call's seconds less its sampling) of a block that skips the store.
SKIPPED = 1.5
REF = EntryRef(key="5c5c5c5c5c5c5c5c" * 2, slug="stalled", label="draws30_tune30_chains2")


@pytest.fixture
def stalled_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a socket that accepts every connection, never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    server.close()


def options_for(endpoint: str) -> dict[str, Any]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


def sample_block(url: str, endpoint: str, seed: int) -> tuple[Any, list[str]]:
    """One ``cloud(cache=url)`` block (its own store object); its record and its warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cc.cloud(
            tiny_model(),
            cache=url,
            storage_options=options_for(endpoint),
            timeout=DEADLINE,
            quiet=True,
        ) as run:
            pm.sample(**sample_kwargs(seed))
    return run.last, [str(w.message) for w in caught if "cloudcache" in str(w.message)]


def test_a_stalled_store_costs_one_block_not_every_block(stalled_endpoint: str) -> None:
    url = f"s3://stalled-{uuid.uuid4().hex[:8]}/cache"
    first, first_messages = sample_block(url, stalled_endpoint, seed=41)
    first_store = first.seconds - first.sampling_seconds
    assert first.hit is False and first.location == "uncached"
    assert len(first_messages) == 1 and "did not finish within 3 s" in first_messages[0]
    assert first_store >= DEADLINE - 0.5, first_store  # it really waited for the endpoint

    second, second_messages = sample_block(url, stalled_endpoint, seed=42)  # a new store object
    second_store = second.seconds - second.sampling_seconds
    assert second.hit is False and second.location == "uncached"
    assert len(second_messages) == 1 and "skipping" in second_messages[0], second_messages
    assert second_store < SKIPPED, f"the second block waited {second_store:.1f} s for the store"
    record_trials(
        "object-store back-off",
        "stalled endpoint, second block",
        1,
        0,
        first_s=round(first_store, 1),
        second_s=round(second_store, 2),
    )


def test_the_back_off_is_per_location(stalled_endpoint: str) -> None:
    url = f"s3://stalled-{uuid.uuid4().hex[:8]}/cache"
    with pytest.raises(StoreError, match="did not finish within 3 s"):
        FileStore(url, options_for(stalled_endpoint)).lookup(REF, timeout=DEADLINE)
    started = time.monotonic()
    with pytest.raises(StoreError, match="skipping"):
        FileStore(url, options_for(stalled_endpoint)).lookup(REF, timeout=DEADLINE)
    assert time.monotonic() - started < SKIPPED
    with socket.socket() as probe:  # the same bucket through another (closed) endpoint
        probe.bind(("127.0.0.1", 0))
        other = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(StoreError) as raised:
        FileStore(url, options_for(other)).lookup(REF, timeout=DEADLINE)
    assert "skipping" not in str(raised.value)  # tried, and refused, not skipped
    other_url = f"s3://stalled-{uuid.uuid4().hex[:8]}/cache"  # another bucket, same endpoint
    with pytest.raises(StoreError, match="did not finish within 3 s"):
        FileStore(other_url, options_for(stalled_endpoint)).lookup(REF, timeout=DEADLINE)
