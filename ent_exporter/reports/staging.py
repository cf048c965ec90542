"""All or nothing: a run's report files are written into a hidden directory inside the output
directory (same filesystem), then moved into place only once every one of them is written.

- Before anything is written, and again before anything is moved, each structure's directory
  under the output directory must be a directory or missing: a file, a symbolic link or anything
  else there stops the run (``UnsafePath``), nothing new is left and nothing existing is touched.
- Moving is a rename per file (a structure's directory is created if missing). A file that is
  replaced is first hard-linked into the staging directory: should a rename fail, every file
  already moved is put back (or removed if it was new), the directories created are removed.
- The staging directory (``.ent-exporter-<month>-<random>``) is removed in every case.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path

from ent_exporter.engine.files import Directory, UnsafePath

PREFIX = ".ent-exporter-"


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
