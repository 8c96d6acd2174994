"""A streaming, unambiguous digest built on xxHash (XXH3-128)."""

from __future__ import annotations

import numpy as np
import xxhash


class Digest:
    """Feeds typed, length-prefixed tokens into XXH3-128 so distinct streams never collide."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = xxhash.xxh3_128()

    def token(self, tag: str, payload: str | bytes = b"") -> None:
        """Add one token: a short tag and its payload, both length-prefixed."""
        data = payload.encode() if isinstance(payload, str) else payload
        self._hash.update(f"{tag}:{len(data)}:".encode())
        self._hash.update(data)

    def array(self, value: np.ndarray) -> None:
        """Add an array by full content: dtype, shape and bytes (object arrays item by item)."""
        self.token("dtype", value.dtype.str)
        self.token("shape", ",".join(map(str, value.shape)))
        if value.dtype.hasobject:
            for item in value.ravel().tolist():
                self.token("item", repr(item))
            return
        contiguous = np.ascontiguousarray(value)
        self._hash.update(f"bytes:{contiguous.nbytes}:".encode())
        if contiguous.nbytes:  # memoryview.cast refuses zero-size arrays
            self._hash.update(memoryview(contiguous).cast("B"))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
