"""A real S3-speaking server (moto) on loopback for the object-store tests.

Use in a test module (tests/ is on sys.path): ``s3_server = fixtures_s3.s3_server``.
Credentials are dummies passed through ``storage_options`` (never stored by cloudcache).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MotoServer:
    """A running moto server and the storage options that reach it."""

    server: Any
    endpoint: str

    def storage_options(self) -> dict[str, Any]:
        return {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }

    def stop(self) -> None:
        self.server.stop()


def start_moto() -> MotoServer:
    """Start a threaded moto server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return MotoServer(server, f"http://127.0.0.1:{port}")


def make_bucket(server: MotoServer) -> str:
    """Create a fresh bucket; returns its name."""
    import boto3

    name = f"cc-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def s3_server() -> Iterator[MotoServer]:
    """One moto server for the whole test module."""
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: MotoServer) -> str:
    """A new empty bucket on the module's server."""
    return make_bucket(s3_server)
