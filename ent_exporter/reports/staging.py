"""All or nothing: a run's report files are written into a hidden directory inside the output
directory (same filesystem), then moved into place only once every one of them is written.

- Before anything is written, and again before anything is moved, each structure's directory
  under the output directory must be a directory or missing: a file, a symbolic link or anything
  else there stops the run (``UnsafePath``), nothing new is left and nothing existing is touched.
- Moving is a rename per file (a structure's directory is created if missing). A file that is
  replaced is first hard-linked into the staging directory: should a rename fail, every file
  already moved is put back (or removed if it was new), the directories created are removed.
- The staging directory (``.ent-exporter-<month>-<random>``) is removed in every case. While the
  run lasts it is locked (``flock``; the kernel releases the lock when the process ends, however it
  ends). A staging directory of a run that was killed (SIGKILL, a power cut) is removed by the next
  run in the same output directory: one that is not locked and that was last modified more than
  LEFTOVER_SECONDS before the new run's own staging directory was made (so never one a run has just
  made and not yet locked).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import stat
from pathlib import Path

from ent_exporter.engine.files import Directory, UnsafePath

PREFIX = ".ent-exporter-"
LEFTOVER_SECONDS = 60.0  # a run locks its staging directory right after making it: far less than this
_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class Staging:
    """``with Staging(out, "2026-10") as staging``: write under ``staging.path``, then ``publish``."""

    def __init__(self, out: Path, label: str) -> None:
        self.out = Path(out)
        self.top = Directory.open(self.out)  # created if missing; followed if a symbolic link
        for _ in range(100):
            name = f"{PREFIX}{label}-{secrets.token_hex(6)}"
            try:
                os.mkdir(name, 0o700, dir_fd=self.top.fd)
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - a hundred random names taken
            raise FileExistsError(f"{self.out}: no free staging directory name")
        self.name = name
        self.path = self.out / name
        self.lock = os.open(name, _OPEN_DIRECTORY, dir_fd=self.top.fd)
        fcntl.flock(self.lock, fcntl.LOCK_EX)  # (a directory nobody else can hold yet: does not wait)
        self.removed = remove_leftovers(self.top, name)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def discard(self) -> None:
        """Removes the staging directory and whatever is left in it."""
        try:
            shutil.rmtree(self.name, dir_fd=self.top.fd)
        except FileNotFoundError:
            pass
        if self.lock >= 0:
            os.close(self.lock)  # (the lock with it)
            self.lock = -1
        self.top.close()

    def check(self, names: list[str]) -> None:
        """Each of ``names`` under the output directory is a directory (not a link to one) or missing."""
        for name in names:
            try:
                mode = os.stat(name, dir_fd=self.top.fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                raise UnsafePath(self.out / name)
            if not stat.S_ISDIR(mode):
                raise UnsafePath(self.out / name, "not a directory")

    def publish(self, staged: list[Path]) -> list[Path]:
        """Moves the ``staged`` files (``self.path/<directory>/<file>``, in that order) to
        ``out/<directory>/<file>``; all of them or none. Returns their new paths."""
        names = list(dict.fromkeys(path.parent.name for path in staged))
        self.check(names)
        with Directory.open(self.path, create=False) as staging:  # the replaced files' hard links
            os.mkdir(".replaced", 0o700, dir_fd=staging.fd)
        created: list[str] = []
        moved: list[tuple[Directory, str, str | None]] = []  # (target, file, its backup's name)
        targets: dict[str, Directory] = {}
        sources: dict[str, Directory] = {}
        try:
            for path in staged:
                directory, file = path.parent.name, path.name
                if directory not in targets:
                    try:
                        os.mkdir(directory, 0o777, dir_fd=self.top.fd)
                        created.append(directory)
                    except FileExistsError:
                        pass
                    targets[directory] = Directory.open(self.out, directory, create=False)
                    sources[directory] = Directory.open(self.path, directory, create=False)
                target, source = targets[directory], sources[directory]
                backup = None
                if target.exists(file):
                    backup = f"{directory}.{file}"
                    with Directory.open(self.path, ".replaced", create=False) as replaced:
                        os.link(file, backup, src_dir_fd=target.fd, dst_dir_fd=replaced.fd, follow_symlinks=False)
                os.replace(file, file, src_dir_fd=source.fd, dst_dir_fd=target.fd)
                moved.append((target, file, backup))
            for target in targets.values():
                target.sync()
        except OSError as error:
            self._undo(moved, created)
            # (the name in the output directory, not a name relative to a directory held open)
            raise OSError(error.errno, error.strerror, str(self.out / directory / file)) from None
        except BaseException:
            self._undo(moved, created)
            raise
        finally:
            for held in [*sources.values(), *targets.values()]:
                held.close()
        return [self.out / path.parent.name / path.name for path in staged]

    def _undo(self, moved: list[tuple[Directory, str, str | None]], created: list[str]) -> None:
        with Directory.open(self.path, ".replaced", create=False) as replaced:
            for target, file, backup in reversed(moved):
                if backup is None:
                    target.unlink(file)
                else:
                    os.replace(backup, file, src_dir_fd=replaced.fd, dst_dir_fd=target.fd)
                target.sync()
        for directory in reversed(created):
            try:
                os.rmdir(directory, dir_fd=self.top.fd)
            except OSError:
                pass
        self.top.sync()


def remove_leftovers(top: Directory, own: str) -> list[str]:
    """Removes the staging directories under ``top`` that killed runs left (see the module's
    docstring); ``own``: the new run's, whose modification time is the measure of age (the
    filesystem's clock: no clock is read). Returns the names removed."""
    horizon = os.stat(own, dir_fd=top.fd, follow_symlinks=False).st_mtime - LEFTOVER_SECONDS
    removed = []
    for name in sorted(top.names()):
        if not name.startswith(PREFIX) or name == own:
            continue
        try:
            fd = os.open(name, _OPEN_DIRECTORY, dir_fd=top.fd)  # not a directory, a link: left alone
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a run that is writing into it
            if os.fstat(fd).st_mtime >= horizon:
                continue  # perhaps a run that has just made it and not locked it yet
            shutil.rmtree(name, dir_fd=top.fd)
            removed.append(name)
        except OSError:
            continue  # what cannot be removed now may be at the next run
        finally:
            os.close(fd)
    return removed
