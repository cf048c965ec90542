"""Calendar periods in the platform's timezone, as UTC instants for the queries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo


def utc(moment: datetime) -> datetime:
    """The same instant in UTC. Durations ("the last 30 days") are then exact: arithmetic on an
    aware datetime of a DST zone is wall-clock arithmetic, an hour off across a change."""
    return moment.astimezone(UTC)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """Start of a local calendar day as a UTC instant (DST days last 23 or 25 hours)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_start(now: datetime, zone: tzinfo) -> datetime:
    return local_midnight(now.astimezone(zone).date(), zone)


def week_start(now: datetime, zone: tzinfo) -> datetime:
    """Monday 00:00 of the ISO week holding ``now``."""
    today = now.astimezone(zone).date()
    return local_midnight(today - timedelta(days=today.weekday()), zone)


def month_start(now: datetime, zone: tzinfo) -> datetime:
    return local_midnight(now.astimezone(zone).date().replace(day=1), zone)


def previous_month(now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The last closed calendar month: [its first day, this month's first day)."""
    this_month = now.astimezone(zone).date().replace(day=1)
    return local_midnight((this_month - timedelta(days=1)).replace(day=1), zone), local_midnight(this_month, zone)


def month_to_date_a_year_earlier(now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The same calendar days as the month to date, a year earlier: [the 1st of this month a year
    earlier, the same local date and time a year earlier], as [start, end) with the end just after
    that instant. A 29 February, which the year before lacks, maps to the end of that February:
    the month to date of a 29 February is compared with the whole February before it."""
    local = now.astimezone(zone)
    start = local_midnight(date(local.year - 1, local.month, 1), zone)
    try:
        same = local.replace(year=local.year - 1)
    except ValueError:  # 29 February
        return start, local_midnight(date(local.year - 1, 3, 1), zone)
    return start, same.astimezone(UTC) + timedelta(microseconds=1)


def zone_name(zone: tzinfo) -> str:
    """The IANA name PostgreSQL's AT TIME ZONE needs (ZoneInfo.key, pytz's zone, or UTC)."""
    name = getattr(zone, "key", None) or getattr(zone, "zone", None)
    if name:
        return name
    if zone.utcoffset(None) == timedelta(0):
        return "UTC"
    # A fixed offset has no DST rules to hand over; refuse rather than silently use UTC.
    raise ValueError(f"timezone {zone!r} has no IANA name (configure one such as Europe/Paris)")
