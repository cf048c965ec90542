"""Files the exporter writes (state files, their journals, reports) that nothing planted in their
directory can redirect.

- The directory a path is configured with (``state_dir``, ``reports.directory``) is opened as it
  is, symbolic link or not (operators point it where the disk is). Each directory the exporter
  creates under it (``collectors``, a structure's reports) is opened with ``O_NOFOLLOW``: a
  symbolic link there is refused (``UnsafePath``), never followed.
- Every operation is then relative to the directory held open (``dir_fd``): renaming or
  replacing a parent afterwards changes nothing.
- A file is written whole into a new temporary file with a random name, created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (whatever is planted at a name, even a dangling symbolic
  link, makes the creation fail and another name is drawn), fsynced, then renamed onto its name.
  A rename replaces what is at the name itself: a symbolic link there is replaced, its target is
  never written.
- A file appended to (the state journal) is opened with ``O_APPEND | O_NOFOLLOW``: a symbolic
  link at its name is an error (``UnsafePath``), never a write through it.
- Files are read with ``O_NOFOLLOW`` too: a symbolic link is an error, not someone else's data.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = os.O_NOFOLLOW
_DIRECTORY = os.O_DIRECTORY
_ATTEMPTS = 100


class UnsafePath(OSError):
    """A symbolic link (or another kind of file) where the exporter writes: refused, never followed."""

    def __init__(self, path: Path | str, what: str = "a symbolic link, not followed") -> None:
        super().__init__(errno.ELOOP, what, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def _refused(error: OSError, path: Path) -> OSError:
    """ELOOP from an O_NOFOLLOW open (a symbolic link at the name) as UnsafePath; other errors as they are."""
    if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR and path.is_symlink()):
        return UnsafePath(path)  # (O_DIRECTORY | O_NOFOLLOW on a link gives ENOTDIR)
    if error.errno == errno.ENOTDIR:
        return UnsafePath(path, "not a directory")
    return error


class Directory:
    """A directory held open; its files are read, written and removed relative to it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, top: Path | str, *parts: str, create: bool = True) -> Directory:
        """``top`` (followed if it is a symbolic link, created with its parents if missing), then each
        of ``parts`` under it, one name each, created if missing and refused if a symbolic link."""
        path = Path(top)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
        try:
            for part in parts:
                if not part or "/" in part or part in (".", ".."):
                    raise ValueError(f"not a single directory name: {part!r}")
                path = path / part
                if create:
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    child = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
                except OSError as error:
                    raise _refused(error, path) from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def lock(self) -> bool:
        """An exclusive ``flock`` on the directory for as long as it is held open (the kernel drops it when
        the process ends, however it ends); False when another open of it holds the lock already."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- reading ----------------------------------------------------------------------------

    def read(self, name: str) -> bytes:
        """The file's bytes (FileNotFoundError if absent, UnsafePath if a symbolic link)."""
        with self.open_read(name) as handle:
            return handle.read()

    def open_read(self, name: str) -> BinaryIO:
        """The file open for reading, to read a piece at a time (FileNotFoundError if absent, UnsafePath if a
        symbolic link or not a regular file)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
        except OSError as error:
            raise _refused(error, self.path / name) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(self.path / name, "not a regular file")
        return os.fdopen(fd, "rb")

    def exists(self, name: str) -> bool:
        """Whether anything is at ``name`` (a symbolic link, even dangling, included)."""
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def names(self) -> list[str]:
        return os.listdir(self.fd)

    # -- writing ----------------------------------------------------------------------------

    def write(
        self,
        name: str,
        data: bytes | Callable[[IO[bytes]], Any],
        mode: int = 0o644,
        before_replace: Callable[[], Any] | None = None,
    ) -> int:
        """Replaces ``name`` with ``data`` (bytes, or a function writing to the open file) through a new
        temporary file, fsynced, then renamed; returns the size written. ``mode``: less the umask.
        ``before_replace``: called once the temporary file is complete, before the rename."""
        temporary, fd = self._temporary(name, mode)
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(data, bytes | bytearray | memoryview):
                    handle.write(data)
                else:
                    data(handle)
                handle.flush()
                size = handle.tell()
                os.fsync(handle.fileno())
            if before_replace is not None:
                before_replace()
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.unlink(temporary)
            raise
        self.sync()
        return size

    def _temporary(self, name: str, mode: int) -> tuple[str, int]:
        for _ in range(_ATTEMPTS):
            temporary = f".{name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(
                    temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode, dir_fd=self.fd
                )
            except FileExistsError:
                continue  # (something, perhaps a planted link, has the name: draw another)
            return temporary, fd
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(self.path / name))

    def append(self, name: str, data: bytes, mode: int = 0o600) -> bool:
        """Appends ``data`` to ``name`` (created if missing) and fsyncs it; returns whether it was created.
        A symbolic link at ``name`` is UnsafePath, never followed."""
        try:
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, dir_fd=self.fd)
            created = False
        except FileNotFoundError:
            try:
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                    mode,
                    dir_fd=self.fd,
                )
            except FileExistsError:  # (a link or a file appeared since: refused, or appended to)
                return self.append(name, data, mode)
            created = True
        except OSError as error:
            raise _refused(error, self.path / name) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePath(self.path / name, "not a regular file")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            self.sync()
        return created

    def unlink(self, name: str) -> bool:
        """Removes ``name`` (a symbolic link itself, never its target); False if there was nothing."""
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def sync(self) -> None:
        """Renames and removals in the directory survive a power loss."""
        os.fsync(self.fd)
