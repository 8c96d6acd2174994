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
        self._hash.update(b"%b:%d:%b" % (tag.encode(), len(data), data))

    def array(self, value: np.ndarray) -> None:
        """Add an array by full content: dtype, shape and bytes (object arrays item by item)."""
        dtype = value.dtype.str.encode()
        shape = ",".join(map(str, value.shape)).encode()
        if value.dtype.hasobject:
            self._hash.update(b"dtype:%d:%bshape:%d:%b" % (len(dtype), dtype, len(shape), shape))
            for item in value.ravel().tolist():
                self.token("item", repr(item))
            return
        contiguous = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        self._hash.update(
            b"dtype:%d:%bshape:%d:%bbytes:%d:"
            % (len(dtype), dtype, len(shape), shape, contiguous.nbytes)
        )
        if contiguous.nbytes:  # memoryview.cast refuses zero-size arrays
            self._hash.update(memoryview(contiguous).cast("B"))

    def values(self, value: np.ndarray) -> None:
        """Add an array read from a file or a tree: text (any string dtype) as text, else bytes.

        Strings compare by text, so ``<U3``, ``object`` and ``|S3`` spellings of one
        coordinate (which a NetCDF round trip may switch between) add the same tokens.
        """
        if value.dtype.kind in "OUS":
            items = [
                item.decode() if isinstance(item, bytes) else str(item)
                for item in value.ravel().tolist()
            ]
            self.token("shape", ",".join(map(str, value.shape)))
            self.token("text", "\x1f".join(items))
            return
        self.array(value)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
