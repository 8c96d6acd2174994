"""Every change a local store makes below its root, made without following a symbolic link.

A shared cache directory is writable by others, who may plant a symbolic link where the cache
creates, touches, renames or deletes something: a last-used marker, a lock, an entry, its
temporary file, a model folder, the ``.locks`` tree. Following such a link would make the cache
create, change or delete a file *outside* its root. So every local create, touch, rename and
delete goes through this module, which walks the path from the root one folder at a time, each
opened relative to the one before with ``O_NOFOLLOW | O_DIRECTORY``, and runs the final
operation relative to its folder's descriptor without following a final link
(``O_NOFOLLOW``, ``follow_symlinks=False``, ``unlink``/``rename`` of the name itself). A folder
swapped for a link after a check is therefore never followed either: what was opened is what
is used. A link (or a file where a folder belongs) raises :class:`~cloudcache.errors.PlantedLink`;
callers that must never fail (a hit touching its marker, a lock) hand it to :func:`report`,
which warns once per path and process, and carry on without it.

Paths are given as the root and a ``/``-separated path below it, as the store names them; the
root itself is the user's choice and may be a link (``~/cache -> /data/cache``). Reading an
entry is :mod:`cloudcache.stores.format.entryfile`'s job (regular files inside the root only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import warnings
from collections.abc import Callable, Iterator

from cloudcache.errors import PlantedLink, StoreError
from cloudcache.stores.writebehind import write_behind
from cloudcache.util.forks import ForkSafeLock

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_FOLDER_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | os.O_CLOEXEC

_reported: set[str] = set()
_reported_lock = ForkSafeLock()


def parts_below(relative: str) -> list[str]:
    """The components of ``relative``; anything but plain names below the root is refused."""
    parts = relative.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\0" in part:
            raise StoreError(f"{relative!r} is not a path below the cache root")
    return parts


@contextlib.contextmanager
def folder_of(root: str, relative: str, *, create: bool) -> Iterator[tuple[int, str]]:
    """``(descriptor of the folder holding relative's last part, that part)`` for the block.

    Folders on the way are created (``create``, honouring the umask) or must exist
    (``FileNotFoundError``); a link or non-folder on the way raises :class:`PlantedLink`.
    """
    parts = parts_below(relative)
    if create:
        os.makedirs(root, exist_ok=True)
    descriptor = os.open(root, os.O_RDONLY | _DIRECTORY | os.O_CLOEXEC)
    try:
        walked = root.rstrip("/")
        for part in parts[:-1]:
            walked = f"{walked}/{part}"
            inner = _open_folder(descriptor, part, walked, create)
            os.close(descriptor)
            descriptor = inner
        yield descriptor, parts[-1]
    finally:
        os.close(descriptor)


def _open_folder(parent: int, name: str, path: str, create: bool) -> int:
    for _ in range(3):  # a folder removed between mkdir and open is created again
        try:
            return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=parent)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                what = _what(parent, name, "a folder")
                raise PlantedLink(f"{path} is {what}; never followed") from error
            raise
    raise StoreError(f"{path} keeps disappearing")


def _what(parent: int, name: str, expected: str) -> str:
    """What the name in ``parent`` is when it is not the ``expected`` kind, in words."""
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        return f"not {expected}"
    return "a symbolic link" if stat.S_ISLNK(mode) else f"not {expected}"


@contextlib.contextmanager
def opened_folder(root: str, relative_folder: str, *, create: bool) -> Iterator[int]:
    """A descriptor of the folder at ``relative_folder`` itself, opened as :func:`folder_of`
    opens the folders above it."""
    path = f"{root.rstrip('/')}/{relative_folder}"
    with folder_of(root, relative_folder, create=create) as (parent, name):
        descriptor = _open_folder(parent, name, path, create)
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def make_folders(root: str, relative_folder: str) -> str:
    """Create ``root/relative_folder`` and the folders above it (never through a link);
    returns its path."""
    with opened_folder(root, relative_folder, create=True):
        pass
    return f"{root.rstrip('/')}/{relative_folder}"


def touch(root: str, relative: str) -> None:
    """Set the regular file at ``relative``'s modification time to now, creating it if needed.

    A link (symbolic, or a hard link sharing the file with another name) or a special file
    there raises :class:`PlantedLink` (nothing outside is touched or created); a file this
    user may not write raises ``PermissionError``.
    """
    with folder_of(root, relative, create=True) as (parent, name):
        flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            descriptor = os.open(name, flags, 0o666, dir_fd=parent)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                what = _what(parent, name, "a regular file")
                path = f"{root.rstrip('/')}/{relative}"
                raise PlantedLink(f"{path} is {what}; never followed") from error
            raise
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):
                raise PlantedLink(f"{root.rstrip('/')}/{relative} is not a regular file")
            if info.st_nlink > 1:  # a hard link would carry the change to another name
                raise PlantedLink(f"{root.rstrip('/')}/{relative} is a hard link; not touched")
            os.utime(descriptor)
        finally:
            os.close(descriptor)


def write_atomically(root: str, relative: str, payload: bytes | Callable[[str], None]) -> None:
    """Write ``payload`` whole to ``relative``: a temp file beside it, fsynced, renamed in.

    ``payload`` is the bytes, or a function that writes the file at the path it is given: the
    temp file's own descriptor (``/proc/self/fd/N`` where Linux has it, so the writer reopens
    exactly the file created here even if its name is swapped for a link meanwhile), which
    the kernel starts writing out while it runs (see :mod:`cloudcache.stores.writebehind`).

    The temp file (``.<name>.<random>.tmp``) is created exclusively, never through a link, with
    the umask's permissions; the rename replaces whatever name is at ``relative`` (a planted
    link is replaced, never written through). Folders on the way are created; a link among
    them raises :class:`PlantedLink`.
    """
    with folder_of(root, relative, create=True) as (parent, name):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC
        while True:
            temp = f".{name}.{secrets.token_hex(6)}.tmp"
            try:
                descriptor = os.open(temp, flags, 0o666, dir_fd=parent)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(descriptor, "wb") as handle:
                if isinstance(payload, bytes | bytearray | memoryview):
                    handle.write(payload)
                    handle.flush()
                else:
                    with write_behind(descriptor):  # the disk starts before the fsync below
                        payload(_reopenable(descriptor, root, relative, temp))
                os.fsync(handle.fileno())
            os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=parent)
            raise


def _reopenable(descriptor: int, root: str, relative: str, temp: str) -> str:
    """A path that opens the file behind ``descriptor``: its ``/proc`` link on Linux, else
    the temp file's own path (``temp`` beside ``relative``)."""
    own = f"/proc/self/fd/{descriptor}"
    if os.path.exists(own):
        return own
    folder = os.path.dirname(f"{root.rstrip('/')}/{relative}")
    return f"{folder}/{temp}"


def remove(root: str, relative: str) -> None:
    """Delete the name at ``relative`` (a link itself, never its target); missing: nothing.

    A link among the folders on the way raises :class:`PlantedLink`: nothing is deleted.
    """
    try:
        with folder_of(root, relative, create=False) as (parent, name):
            os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        return


def remove_empty_folder(root: str, relative_folder: str) -> None:
    """Delete the folder at ``relative_folder`` if it is empty (else, or if missing: nothing)."""
    with (
        contextlib.suppress(OSError, PlantedLink),
        folder_of(root, relative_folder, create=False) as (parent, name),
    ):
        if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            os.rmdir(name, dir_fd=parent)


def lstat(root: str, relative: str) -> os.stat_result | None:
    """The status of the name at ``relative`` itself (a link is not followed); ``None`` when
    it is missing or a link lies on the way to it."""
    try:
        with folder_of(root, relative, create=False) as (parent, name):
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except (OSError, PlantedLink):
        return None


def folder_contents(root: str, relative_folder: str) -> list[tuple[str, os.stat_result]]:
    """``(name, status of the name itself)`` for everything in the folder at
    ``relative_folder``, which is opened without following a link (:class:`PlantedLink`)."""
    with opened_folder(root, relative_folder, create=False) as descriptor:
        found = []
        for name in os.listdir(descriptor):
            with contextlib.suppress(FileNotFoundError):  # gone since the listing
                found.append((name, os.stat(name, dir_fd=descriptor, follow_symlinks=False)))
        return found


def regular_files(root: str, relative_folder: str) -> Iterator[tuple[str, os.stat_result]]:
    """``(path below the folder, status)`` of every regular file in the tree at
    ``relative_folder``; links (to files or folders) are neither followed nor listed."""
    try:
        with opened_folder(root, relative_folder, create=False) as top:
            for folder, _, names, descriptor in os.fwalk(dir_fd=top, follow_symlinks=False):
                for name in names:
                    try:
                        info = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(info.st_mode):
                        yield os.path.normpath(os.path.join(folder, name)), info
    except (FileNotFoundError, PlantedLink):
        return


def report(error: PlantedLink) -> None:
    """Warn about a planted link once per path and process (the operation was skipped)."""
    message = f"cloudcache: {error}; ignored it (a link planted in a shared cache?)"
    with _reported_lock:
        if message in _reported:
            return
        _reported.add(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
