"""Each collector's last result and state, persisted atomically in the state directory.

One JSON file per collector holds its samples, its own state (watermarks, running
totals) and the time of its last success, written together by write-then-rename: after
a crash (even ``kill -9`` mid-write) a file is either the old one or the new one, so
counters and the watermark they were counted up to never disagree.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class StoredResult:
    samples: dict[str, list]  # collectors.base.encode_samples format
    state: dict[str, Any] = field(default_factory=dict)
    last_success: float | None = None  # unix time of the last complete run
    complete: bool = True  # False for a checkpoint taken in the middle of a run
    # When each cumulative series last moved: {family: [[label values], unix time]}.
    changed_at: dict[str, list] = field(default_factory=dict)


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory) / "collectors"
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, collector: str) -> Path:
        return self.directory / f"{collector}.json"

    def load(self, collector: str) -> StoredResult | None:
        path = self._path(collector)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            # Never happens with rename-based writes short of disk corruption; starting
            # over re-counts from scratch, which is exact, so do that rather than stop.
            log.error("ignoring unreadable state %s (%s): %s starts from scratch", path, error, collector)
            return None
        if data.get("version") != FORMAT_VERSION:
            log.warning("state %s has format %s, expected %s: starting from scratch", path, data.get("version"), FORMAT_VERSION)
            return None
        return StoredResult(
            samples=data["samples"], state=data["state"], last_success=data["last_success"], complete=data["complete"],
            changed_at=data.get("changed_at", {}),
        )

    def save(self, collector: str, result: StoredResult) -> None:
        payload = json.dumps(
            {
                "version": FORMAT_VERSION,
                "collector": collector,
                "samples": result.samples,
                "state": result.state,
                "last_success": result.last_success,
                "complete": result.complete,
                "changed_at": result.changed_at,
            },
            separators=(",", ":"),
        )
        path = self._path(collector)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{collector}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power loss
        finally:
            os.close(directory)
