"""Runs each collector on its schedule with APScheduler, retrying failures with backoff.

The instant collectors run in a pool of threads; the window collectors (hourly, daily, weekly, monthly)
in a thread of their own (``WINDOWS``), one run at a time. A window run holds its per-day aggregates,
its users and their attachments for its length (tens of MB at 1,000 establishments), and the collectors
of one cadence fall due together (every hourly one at :05): one after the other, the process's peak is
that of its largest run, not the sum of those that fire together, and the instant cycle keeps its
threads. A window run that waits for its turn runs however late (no misfire limit): it is not skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from ent_exporter.engine import clock as clocks
from ent_exporter.engine.collector import Cadence
from ent_exporter.engine.runtime import Runtime

log = logging.getLogger(__name__)

WINDOWS = "windows"  # the executor of the window collectors' runs: one thread


class _OverlapSkipFilter(logging.Filter):
    """APScheduler warns when a run falls due while the previous one still goes (a long first count
    at start-up): that is the one-run-at-a-time rule at work, not something to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances reached" in str(record.msg):
            log.debug("%s", record.getMessage())
            return False
        return True


logging.getLogger("apscheduler.scheduler").addFilter(_OverlapSkipFilter())


def retry_delay(failures: int, initial: float, maximum: float, period: timedelta) -> float:
    """Exponential backoff, never longer than the schedule's period (the next regular run comes sooner anyway).
    The exponent stops growing at 64: a day of outage is over a thousand failures of a minute's collector."""
    factor = 2.0 ** min(max(0, failures - 1), 64)
    return min(initial * factor, maximum, period.total_seconds())


class CollectorScheduler:
    """One cron job per collector; a failed run schedules a one-shot retry."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        retry_initial_seconds: float = 5,
        retry_max_seconds: float = 300,
        workers: int = 4,
    ) -> None:
        self.runtime = runtime
        self.zone = zone = runtime.zone
        self.retry_initial_seconds = retry_initial_seconds
        self.retry_max_seconds = retry_max_seconds
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers), WINDOWS: ThreadPoolExecutor(1)},
            # One run at a time per collector; a run missed while busy is merged into the next.
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
            timezone=zone,
        )
        for name in runtime.collectors:
            trigger = runtime.schedules[name].trigger()  # the configured cron and jitter
            # A collector whose persisted result is older than its cadence runs at start-up.
            # (APScheduler fires on the machine's time: the dates handed to it are in that time.)
            first = clocks.SYSTEM.local(zone) if runtime.is_stale(name) else None
            self.scheduler.add_job(
                self.run,
                trigger,
                args=[name],
                id=name,
                name=name,
                **self._executor(name),
                **({"next_run_time": first} if first else {}),
            )

    def _executor(self, name: str) -> dict[str, object]:
        """Where a collector's runs go: a window collector's to WINDOWS, where a run waits for the one before
        it (however long: no misfire limit); an instant collector's to the pool."""
        if self.runtime.collectors[name].cadence is Cadence.INSTANT:
            return {}
        return {"executor": WINDOWS, "misfire_grace_time": None}

    def run(self, name: str) -> bool:
        """Runs a collector now; on failure, schedules a one-shot retry with backoff."""
        if self.runtime.run(name) or self.runtime.stopping.is_set():
            return True
        delay = retry_delay(
            self.runtime.consecutive_failures[name],
            self.retry_initial_seconds,
            self.retry_max_seconds,
            self.runtime.schedules[name].period,
        )
        log.info("%s: retrying in %.0f s", name, delay)
        self.scheduler.add_job(
            self.run,
            "date",
            run_date=clocks.SYSTEM.local(self.zone) + timedelta(seconds=delay),
            args=[name],
            id=f"{name}:retry",
            name=f"{name} (retry)",
            replace_existing=True,
            **self._executor(name),
        )
        return False

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}
