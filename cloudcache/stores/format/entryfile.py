"""Open only what is safe to open: a regular file inside the cache root.

A FIFO, a device or a socket planted at an entry's path would block a reader forever, and a
symbolic link out of the root would make the cache read (or vouch for) a file it does not own.
Such paths are damaged entries: they are recognised from ``lstat``/``stat`` and a
non-blocking open, and never opened for reading. A file this process may not read is not
damaged: it is :class:`EntryUnreadable` (a teammate's entry with a strict mode), so nobody
deletes it as broken.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from cloudcache.errors import CorruptEntry, EntryUnreadable

_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}

#: Read-only, never blocking on a FIFO, never following a final link, closed across exec.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (``"a FIFO (named pipe)"``)."""
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


def is_within(path: str, root: str) -> bool:
    """Whether the resolved ``path`` lies inside the resolved ``root``."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def checked_entry_file(path: str, root: str | None = None) -> tuple[str, int]:
    """The resolved path and size of the regular file at ``path``.

    Raises ``FileNotFoundError`` when nothing is there (a miss), :class:`CorruptEntry` for a
    special file or a link out of ``root``, :class:`EntryUnreadable` for missing permissions.
    """
    real = os.path.realpath(path)
    if root is not None and not is_within(real, root):
        raise CorruptEntry("is a symbolic link to a file outside the cache root")
    try:
        info = os.stat(real)
    except PermissionError as error:
        raise EntryUnreadable(f"no permission to read it ({error.strerror})") from error
    if not stat.S_ISREG(info.st_mode):
        raise CorruptEntry(f"is {file_kind(info.st_mode)}, not a regular file")
    try:
        descriptor = os.open(real, _READ_FLAGS)
    except PermissionError as error:
        raise EntryUnreadable(f"no permission to read it ({error.strerror})") from error
    except OSError as error:  # e.g. swapped for a link since the stat (ELOOP)
        raise CorruptEntry(f"cannot be opened as a regular file ({error.strerror})") from error
    try:
        opened = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
        info.st_dev,
        info.st_ino,
    ):
        raise CorruptEntry("changed into something other than a regular file while opened")
    return real, int(opened.st_size)


@contextlib.contextmanager
def open_regular_file(path: str) -> Iterator[BinaryIO]:
    """Open ``path`` for reading only if it is a regular file; never follow a final link.

    The non-blocking open keeps a FIFO swapped in after a listing from blocking the reader.
    """
    try:
        descriptor = os.open(path, _READ_FLAGS)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise CorruptEntry("a symbolic link, not an entry file; never followed") from error
        raise
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise CorruptEntry(f"not a regular file ({file_kind(mode)}); never read")
        yield handle
