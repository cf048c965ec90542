"""The daemon's monthly job: the reports of the month that just closed, written into ``reports.directory``.

Scheduled on the monthly cadence (``schedules.monthly``, default the 1st at 04:15 in the
platform's timezone) on the collectors' scheduler, as its own job: the runtime knows nothing
of reports. At start-up, a closed month whose platform report is missing (the daemon was
down on the 1st) is written at once. A failed run is logged and retried at the next start or
the next month; nothing of the metrics depends on it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, tzinfo
from pathlib import Path

from ent_exporter.engine import clock as clocks
from ent_exporter.engine.schedule import Schedule
from ent_exporter.reports.settings import ReportsConfig

log = logging.getLogger(__name__)
JOB_ID = "monthly-reports"


class ReportJob:
    """``source``: a source, or a callable returning one opened for the run and closed after it
    (the daemon's: a pool of its own with the reports' statement timeout, see ent_exporter.app.report_source)."""

    def __init__(
        self, settings: ReportsConfig, source, zone: tzinfo, clock: clocks.Clock | None = None, min_count: int = 0
    ) -> None:
        self.settings = settings
        self.min_count = min_count
        self.source = source
        self.zone = zone
        self.clock = clock or clocks.default()
        self._lock = threading.Lock()

    def closed_month(self, now: datetime | None = None):
        from ent_exporter.reports.figures import Month

        local = (now or self.clock.now()).astimezone(self.zone)
        return Month(local.year, local.month, self.zone).shift(-1)

    def done(self, month) -> bool:
        """Whether ``month``'s platform report is there (its last file is written last)."""
        from ent_exporter.reports.output import directory_name

        last = "pdf" if "pdf" in self.settings.formats else ("html" if "html" in self.settings.formats else None)
        directory = Path(self.settings.directory) / directory_name("all")
        if last is None:
            return (directory / f"{month}-summary.csv").exists()
        return (directory / f"{month}.{last}").exists()

    def run(self, now: datetime | None = None) -> list[Path]:
        """Writes the closed month's reports; returns the files ([] when another run is going or it failed)."""
        from ent_exporter.reports import ReportError, write_reports

        if not self._lock.acquire(blocking=False):
            return []
        source = None
        try:
            source = self.source() if callable(self.source) else self.source
            if source is not self.source:
                source.wait_ready()
            month = self.closed_month(now)
            written = write_reports(
                source,
                month,
                Path(self.settings.directory),
                formats=tuple(self.settings.formats),
                language=self.settings.language,
                produced=self.clock.now(),
                min_count=self.min_count,
                app_names=self.settings.app_names(),
            )
            log.info("monthly reports of %s: %d files in %s", month, len(written), self.settings.directory)
            return written
        except ReportError as error:
            log.warning("monthly reports: %s", error)
        except Exception as error:  # the database, the disk: said, retried at the next start or month
            log.warning(
                "monthly reports failed (%s: %s); retried at the next start or month",
                type(error).__name__,
                str(error).strip(),
            )
        finally:
            if source is not None and source is not self.source:
                source.close()
            self._lock.release()
        return []

    def attach(self, scheduler, schedule: Schedule) -> None:
        """Adds the job to an APScheduler scheduler on the monthly schedule; at once if the last month is missing."""
        trigger = schedule.trigger()
        due_now = not self.done(self.closed_month())
        # (APScheduler fires on the machine's time: the date handed to it is in that time.)
        scheduler.add_job(
            self.run,
            trigger,
            id=JOB_ID,
            name=JOB_ID,
            max_instances=1,
            coalesce=True,
            **({"next_run_time": clocks.SYSTEM.local(self.zone)} if due_now else {}),
        )
