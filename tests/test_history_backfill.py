"""The comparison panels on a real Prometheus holding two years of backfilled history.

Raw logins (a user, a profile, an instant) are generated for two years and ten days before 1 March 2028
12:00 (Paris), with a weekly school rhythm. The test writes what the exporter and Prometheus publish —
ent_logins_total per profile scraped every 5 minutes (each value the logins before the scrape), the
hourly visitors gauges of the month to date, of its days a year earlier and of the closed previous month
around 29 February 2028 (recounted from the raw logins as of each hourly run), and Prometheus' own
prometheus_tsdb_lowest_timestamp_seconds (the oldest instant stored, as its self-scrape reports it) —
as OpenMetrics with pinned timestamps, backfills a TSDB with ``promtool tsdb create-blocks-from
openmetrics`` and serves it with a real Prometheus. The panels' queries, substituted as Grafana sends
them, give the raw counts of each window at 7 d, 90 d and 1 y; the month to date of 29 February is
compared with the whole February a year earlier, 1 March's with 1 March's; and a comparison whose window
starts before the oldest stored instant gives no value ("–"), where the same query without the guard
would show a sliver of the window.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from random import Random
from zoneinfo import ZoneInfo

import pytest

from ent_exporter.mixin.panels import shifted
from tests.support import backfilled_prometheus, prometheus_query
from tests.test_dashboards import iter_panels, load_dashboards, substitute

PARIS = ZoneInfo("Europe/Paris")
END = datetime(2028, 3, 1, 12, 0, tzinfo=PARIS).astimezone(UTC)  # the history's last scrape; pinned
START = END - timedelta(days=2 * 365 + 10)
SCRAPE = 300
LEAP_DAY = datetime(2028, 2, 29, 12, 0, tzinfo=PARIS).astimezone(UTC)
RANGES = {"7d": 7 * 86400, "90d": 90 * 86400, "1y": 365 * 86400}
WEEKS_52 = 52 * 7 * 86400
JOB = {"job": "ent-exporter", "instance": "exporter:9877"}
PROFILES = ("Teacher", "Student")
USERS = [f"u{n}" for n in range(60)]
GAUGES_FROM = datetime(2028, 2, 27, tzinfo=PARIS).astimezone(UTC)  # the visitors gauges: the last days


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def logins() -> list[tuple[str, str, float]]:
    """(user, profile, t), sorted: school days busier than weekends, more users in the second year."""
    rng = Random(2028)
    out, t = [], START.timestamp()
    while t < END.timestamp():
        local = datetime.fromtimestamp(t, PARIS)
        busy = local.weekday() < 5 and 7 <= local.hour < 19
        users = USERS if t > (END - timedelta(days=365)).timestamp() else USERS[:40]
        out.append((rng.choice(users), rng.choice(PROFILES), t))
        t += rng.uniform(60, 1800 if busy else 7200)
    return out


LOGINS = logins()


def count(since: float, until: float) -> int:
    """Logins in [since, until): what increase() reads between two scrapes on the window's edges."""
    return sum(1 for _u, _p, t in LOGINS if since <= t < until)


def month_a_year_earlier(run: datetime) -> tuple[float, float]:
    """By hand: the 1st of the month a year before to the same local time a year before, inclusive; a 29
    February (none the year before): the whole February before."""
    local = run.astimezone(PARIS)
    start = paris(local.year - 1, local.month, 1)
    if (local.month, local.day) == (2, 29):
        return start.timestamp(), paris(local.year - 1, 3, 1).timestamp() - 1e-6
    return start.timestamp(), local.replace(year=local.year - 1).astimezone(UTC).timestamp()


def visitors(since: float, until: float) -> float:
    return float(len({u for u, _p, t in LOGINS if since <= t <= until}))


def periods(run: datetime) -> dict[str, tuple[float, float]]:
    local = run.astimezone(PARIS)
    first = paris(local.year, local.month, 1)
    previous = (first.astimezone(PARIS) - timedelta(days=1)).replace(day=1, hour=0)
    return {
        "month": (first.timestamp(), run.timestamp()),
        "month_a_year_earlier": month_a_year_earlier(run),
        "previous_month": (previous.astimezone(UTC).timestamp(), first.timestamp() - 1e-6),
    }


def last_run(moment: datetime) -> datetime:
    """The hourly visitors collectors' run before ``moment`` (at minute 5)."""
    run = moment.replace(minute=5, second=0, microsecond=0)
    return run if run <= moment else run - timedelta(hours=1)


def openmetrics() -> str:
    at = list(range(int(START.timestamp()), int(END.timestamp()) + 1, SCRAPE))
    labels = ",".join(f'{k}="{v}"' for k, v in JOB.items())
    lines = ["# TYPE ent_logins_total unknown"]
    for profile in PROFILES:
        times = [t for _u, p, t in LOGINS if p == profile]
        lines += [
            f'ent_logins_total{{{labels},structure="all",profile="{profile}"}} {bisect.bisect_left(times, s)} {s}'
            for s in at
        ]
    lines.append("# TYPE ent_unique_visitors unknown")
    gauge_at = [s for s in at if s >= GAUGES_FROM.timestamp()]
    cache: dict[tuple, float] = {}
    for period in ("month", "month_a_year_earlier", "previous_month"):
        for s in gauge_at:
            window = periods(last_run(datetime.fromtimestamp(s, UTC)))[period]
            if window not in cache:
                cache[window] = visitors(*window)
            lines.append(
                f'ent_unique_visitors{{{labels},structure="all",profile="all",period="{period}"}} {cache[window]:g} {s}'
            )
    lines.append("# TYPE prometheus_tsdb_lowest_timestamp_seconds unknown")
    self_scrape = 'job="prometheus",instance="localhost:9090"'
    lines += [f"prometheus_tsdb_lowest_timestamp_seconds{{{self_scrape}}} {at[0]} {s}" for s in at]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    work = tmp_path_factory.mktemp("two-years")
    (work / "history.om").write_text(openmetrics())
    # A few blocks for two years, not one per 2 hours.
    with backfilled_prometheus(
        work / "history.om",
        work / "tsdb",
        "prometheus_tsdb_lowest_timestamp_seconds",
        END.timestamp(),
        year_blocks=True,
        wait=180,
    ) as port:
        yield port


def panel(title: str) -> dict:
    return next(p for d in load_dashboards("en").values() for p in iter_panels(d) if p["title"] == title)


def grafana(seconds: int) -> dict[str, str]:
    return {
        "structure": "all",
        "profile": ".*",
        "instance": ".*",
        "__range": f"{seconds}s",
        "__range_s": str(seconds),
    }


def shown(title: str, seconds: int, at: datetime, port: int) -> dict[str, float | None]:
    """{refId: the stat's value, None when the query gives nothing ("–")}."""
    out: dict[str, float | None] = {}
    for target in panel(title)["targets"]:
        result = prometheus_query(port, substitute(target["expr"], grafana(seconds)), at.timestamp())
        assert len(result) <= 1, (title, target["refId"], result)
        out[target["refId"]] = float(result[0]["value"][1]) if result else None
    return out


def change(now: float, before: float) -> float | None:
    return (now - before) / before if before else None


@pytest.mark.parametrize("window", list(RANGES))
def test_connections_beside_the_previous_period_and_52_weeks_earlier(prometheus, window):
    seconds, end = RANGES[window], LEAP_DAY.timestamp()
    now, before = count(end - seconds, end), count(end - 2 * seconds, end - seconds)
    year = count(end - WEEKS_52 - seconds, end - WEEKS_52)
    values = shown("Connections compared", seconds, LEAP_DAY, prometheus)
    assert (values["A"], values["B"], values["D"]) == (now, before, year)
    assert values["C"] == pytest.approx(change(now, before), rel=1e-9)
    assert values["E"] == pytest.approx(change(now, year), rel=1e-9)
    assert min(now, before, year) > 0


@pytest.mark.parametrize(
    "at",
    [paris(2028, 2, 28, 12, 0), LEAP_DAY, paris(2028, 3, 1, 9, 30), END],
    ids=["28 February", "29 February", "1 March 09:30", "1 March 12:00"],
)
def test_month_to_date_beside_the_same_calendar_days_a_year_earlier(prometheus, at):
    """28 February 2028: to 28 February 2027 at the same hour; 29 February 2028: February to date beside the
    whole February 2027 (no 29th); 1 March: from 1 March 2027 at midnight, where PromQL's 365-day year
    would start on 2 March 2027."""
    run = last_run(at)
    truth = {period: visitors(*window) for period, window in periods(run).items()}
    values = shown("Unique visitors compared", 86400, at, prometheus)
    assert values["A"] == truth["month"] and values["D"] == truth["month_a_year_earlier"]
    assert values["B"] == truth["previous_month"] and "C" not in values
    assert min(truth.values()) > 0
    assert values["E"] == pytest.approx(change(truth["month"], truth["month_a_year_earlier"]), rel=1e-9)
    if (run.astimezone(PARIS).month, run.astimezone(PARIS).day) == (2, 29):
        assert month_a_year_earlier(run)[1] > paris(2027, 2, 28, 23, 59).timestamp()
        assert truth["month_a_year_earlier"] == visitors(paris(2027, 2, 1).timestamp(), paris(2027, 3, 1).timestamp())


def test_a_comparison_lacking_stored_data_is_empty(prometheus):
    """At 1 y, 200 days before the end, the previous year and the year 52 weeks earlier start before the
    oldest stored instant: nothing (the stat's "–"), where the unguarded query reads a sliver of the window;
    at 90 d the same instant has both windows stored."""
    at = END - timedelta(days=200)
    values = shown("Connections compared", RANGES["1y"], at, prometheus)
    assert values["A"] == count(at.timestamp() - RANGES["1y"], at.timestamp())
    assert values == {"A": values["A"], "B": None, "C": None, "D": None, "E": None}
    targets = {t["refId"]: t["expr"] for t in panel("Connections compared")["targets"]}
    sliver = prometheus_query(
        prometheus, substitute(shifted(targets["A"], "$__range"), grafana(RANGES["1y"])), at.timestamp()
    )
    assert 0 < float(sliver[0]["value"][1]) < 0.7 * values["A"]
    values = shown("Connections compared", RANGES["90d"], at, prometheus)
    assert None not in values.values()
