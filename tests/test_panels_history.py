"""Every panel query on a real Prometheus holding days of history, at 1 h, 24 h, 7 d, 30 d and 90 d.

The test generates raw ENT events (logins, application openings, activations, connector calls,
collector failures) from a seeded random generator, turns them into the series the exporter
publishes, scraped every minute (counters count the events before each scrape; the hourly
visitor gauges hold the values of their last run), writes them as OpenMetrics with pinned
timestamps and backfills a TSDB with ``promtool tsdb create-blocks-from openmetrics``. A real
Prometheus serves it; every query of every panel is evaluated the way Grafana sends it (its
interval from the range, maxDataPoints and the panel's minimum interval; $__rate_interval;
explicit ``time``/``start``/``end``), and the panels that state a number are compared with that
number computed from the raw events in Python: logins in each day's bar equal the raw count,
per-hour rates count every login at 90 days, the failure ratio hides what the alert ignores,
and the headline visitors count a user with two profiles once.
"""
from __future__ import annotations

import bisect
import json
import math
import subprocess
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from random import Random
from zoneinfo import ZoneInfo

import pytest

from tests.support import free_port, require_binary, wait_until
from tests.test_dashboards import iter_panels, load_dashboards, substitute

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc
NOW = datetime(2025, 11, 19, 12, 0, tzinfo=UTC)  # a Wednesday; pinned: the test never reads the clock
DAYS = 4
START = NOW - timedelta(days=DAYS)
SCRAPE = 60  # seconds between two samples of a counter (the test's scrape interval)
GAUGE_EVERY = 240  # hourly and daily gauges: sampled less often (within Prometheus' 5-minute lookback)
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}
DEFAULT_MAX_POINTS = 1000  # Grafana's default maxDataPoints: about the panel's width in pixels
JOB = {"job": "ent-exporter", "instance": "exporter:9877"}
STRUCTURES = ("S1", "S2")
PROFILES = ("Teacher", "Student", "Personnel")
APPS = ("pronote", "moodle")
CONNECTORS = ("pronote", "cas")
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MIN_CALLS_PER_MINUTE = 2  # the failure alert's guard (10 calls in 5 minutes)


# -- the raw events ----------------------------------------------------------------------------

def generate(seed: int = 14) -> dict:
    """Users (one with two profiles in S1, one attached to both structures) and their events, at
    half-seconds so that no event sits on a scrape instant."""
    rng = Random(seed)
    users: dict[str, dict] = {}
    for number in range(40):
        users[f"u{number:02d}"] = {"structures": {STRUCTURES[number % 2]},
                                   "profiles": ["Teacher"] if number % 5 == 0 else ["Student"]}
    users["two-hats"] = {"structures": {"S1"}, "profiles": ["Teacher", "Personnel"]}
    users["both"] = {"structures": {"S1", "S2"}, "profiles": ["Student"]}
    span = int((NOW - START).total_seconds())

    def moment() -> float:
        return START.timestamp() + rng.randrange(span) + 0.5

    names = sorted(users)
    logins = [(user, rng.choice(users[user]["profiles"]), moment())
              for user in (rng.choice(names) for _ in range(1500))]
    # The two-profile user logs in under both profiles on the last day (today, this week, this month).
    logins += [("two-hats", "Teacher", NOW.timestamp() - 3 * 3600 + 0.5),
               ("two-hats", "Personnel", NOW.timestamp() - 2 * 3600 + 0.5)]
    accesses = [(user, rng.choice(users[user]["profiles"]), rng.choice(APPS), moment())
                for user in (rng.choice(names) for _ in range(900))]
    activations = [(user, users[user]["profiles"][0], moment()) for user in rng.sample(names, 12)]
    calls = []  # (connector, success, duration, time)
    t = START.timestamp()
    while t < NOW.timestamp():
        hour = datetime.fromtimestamp(t, UTC).hour
        if 6 <= hour < 18:  # pronote: busy in the day, an outage of an hour on the second day
            outage = START.timestamp() + 86400 + 2 * 3600 <= t < START.timestamp() + 86400 + 3 * 3600
            calls.append(("pronote", not outage and rng.random() > 0.02, rng.choice(BUCKETS[:6]) * 0.9, t + 0.5))
            t += rng.choice((10, 15, 20))
        else:
            t += 600
    t = START.timestamp()
    while t < NOW.timestamp():  # cas: a call every 5 to 15 minutes, one in three failing (night noise)
        calls.append(("cas", rng.random() > 0.33, rng.choice(BUCKETS) * 0.9, t + 0.5))
        t += rng.choice((300, 600, 900))
    failures = sorted(moment() for _ in range(25))  # failed collector runs
    return {"users": users, "logins": sorted(logins, key=lambda e: e[-1]),
            "accesses": sorted(accesses, key=lambda e: e[-1]), "activations": sorted(activations, key=lambda e: e[-1]),
            "calls": sorted(calls, key=lambda e: e[-1]), "failures": failures}


def structures_of(data: dict, user: str) -> set[str]:
    return data["users"][user]["structures"] | {"all"}


# -- the series, as the exporter publishes them ----------------------------------------------

def scrape_times(every: int = SCRAPE) -> list[int]:
    return list(range(int(START.timestamp()), int(NOW.timestamp()) + 1, every))


def cumulative(times: list[float], at: list[int]) -> list[int]:
    """For each scrape instant, how many of the (sorted) event times came before it."""
    return [bisect.bisect_left(times, t) for t in at]


def counter_series(data: dict) -> dict[tuple, list[float]]:
    at = scrape_times()
    events: dict[tuple, list[float]] = defaultdict(list)
    for user, profile, t in data["logins"]:
        for structure in structures_of(data, user):
            events[("ent_logins_total", ("structure", structure), ("profile", profile))].append(t)
    for user, profile, app, t in data["accesses"]:
        for structure in structures_of(data, user):
            events[("ent_app_accesses_total", ("structure", structure), ("profile", profile), ("app", app))].append(t)
    for user, profile, t in data["activations"]:
        for structure in structures_of(data, user):
            events[("ent_account_activations_total", ("structure", structure), ("profile", profile))].append(t)
    for connector, success, duration, t in data["calls"]:
        outcome = "success" if success else "failure"
        events[("ent_connector_requests_total", ("connector", connector), ("outcome", outcome))].append(t)
        for bound in (*BUCKETS, math.inf):
            if duration <= bound:
                le = "+Inf" if bound == math.inf else repr(bound)
                events[("ent_connector_request_duration_seconds_bucket", ("connector", connector), ("le", le))].append(t)
        events[("ent_connector_request_duration_seconds_count", ("connector", connector))].append(t)
    for t in data["failures"]:
        events[("ent_exporter_collector_failures_total", ("collector", "accounts"))].append(t)
    # Born at 0 for every known pair, both outcomes, every bucket.
    for structure in (*STRUCTURES, "all"):
        for profile in PROFILES:
            for name in ("ent_logins_total", "ent_account_activations_total"):
                events.setdefault((name, ("structure", structure), ("profile", profile)), [])
            for app in APPS:
                events.setdefault(("ent_app_accesses_total", ("structure", structure), ("profile", profile),
                                   ("app", app)), [])
    for connector in CONNECTORS:
        for outcome in ("success", "failure"):
            events.setdefault(("ent_connector_requests_total", ("connector", connector), ("outcome", outcome)), [])
        for bound in (*BUCKETS, math.inf):
            le = "+Inf" if bound == math.inf else repr(bound)
            events.setdefault(("ent_connector_request_duration_seconds_bucket", ("connector", connector),
                               ("le", le)), [])
    series = {key: [float(n) for n in cumulative(sorted(times), at)] for key, times in events.items()}
    for connector in CONNECTORS:  # the duration sum, cumulative too
        mine = [(t, d) for c, _s, d, t in data["calls"] if c == connector]
        totals, running, index = [], 0.0, 0
        for t in at:
            while index < len(mine) and mine[index][0] < t:
                running += mine[index][1]
                index += 1
            totals.append(running)
        series[("ent_connector_request_duration_seconds_sum", ("connector", connector))] = totals
    return series


def period_start(moment: datetime, period: str) -> datetime:
    local = moment.astimezone(PARIS)
    day = datetime(local.year, local.month, local.day, tzinfo=PARIS)
    if period == "week":
        day = day - timedelta(days=local.weekday())
        day = datetime(day.year, day.month, day.day, tzinfo=PARIS)
    if period == "month":
        day = datetime(local.year, local.month, 1, tzinfo=PARIS)
    return day.astimezone(UTC)


def visitors_at(data: dict, run: datetime, period: str) -> tuple[dict, dict]:
    """(unique visitors, visits per visitor) by (structure, profile), profile="all" included, as the
    hourly collector computes them at ``run``."""
    start = period_start(run, period).timestamp()
    people: dict[tuple, set] = defaultdict(set)
    logins: dict[tuple, int] = defaultdict(int)
    for user, profile, t in data["logins"]:
        if start <= t <= run.timestamp():
            for structure in structures_of(data, user):
                for key in ((structure, profile), (structure, "all")):
                    people[key].add(user)
                    logins[key] += 1
    counts = {key: float(len(users)) for key, users in people.items()}
    return counts, {key: logins[key] / len(users) for key, users in people.items()}


def gauge_series(data: dict) -> dict[tuple, list[float]]:
    at = scrape_times(GAUGE_EVERY)
    keys = [(s, p) for s in (*STRUCTURES, "all") for p in (*PROFILES, "all")]
    series: dict[tuple, list[float]] = defaultdict(list)
    cache: dict[tuple, tuple] = {}
    for t in at:
        moment = datetime.fromtimestamp(t, UTC)
        run = moment.replace(minute=5, second=0)  # the hourly collector runs at minute 5
        if run > moment:
            run -= timedelta(hours=1)
        for period in ("day", "week", "month"):
            if (run, period) not in cache:
                cache[(run, period)] = visitors_at(data, run, period)
            counts, ratios = cache[(run, period)]
            for structure, profile in keys:
                labels = (("structure", structure), ("profile", profile), ("period", period))
                series[("ent_unique_visitors", *labels)].append(counts.get((structure, profile), 0.0))
                series[("ent_visits_per_visitor", *labels)].append(ratios.get((structure, profile), 0.0))
    # Daily families: constant over the test's days (accounts do not change here).
    for structure, profile in keys:
        people = [u for u, d in data["users"].items()
                  if (structure == "all" or structure in d["structures"]) and (profile == "all" or profile in d["profiles"])]
        base = (("structure", structure), ("profile", profile))
        series[("ent_accounts", *base, ("state", "activated"))] = [float(len(people))] * len(at)
        series[("ent_accounts", *base, ("state", "pending"))] = [0.0] * len(at)
        series[("ent_account_activation_ratio", *base)] = [1.0 if people else 0.0] * len(at)
        for days in ("30", "90"):
            series[("ent_inactive_accounts", *base, ("days", days))] = [0.0] * len(at)
        for le in ("0.0", "1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "+Inf"):
            series[("ent_user_logins_30d_bucket", *base, ("le", le))] = [float(len(people))] * len(at)
        series[("ent_user_logins_30d_count", *base)] = [float(len(people))] * len(at)
        series[("ent_user_logins_30d_sum", *base)] = [float(len(people)) * 20] * len(at)
    names = {"S1": "Collège Jean Moulin", "S2": "Lycée Victor Hugo"}
    for structure in STRUCTURES:
        series[("ent_structure_info", ("structure", structure), ("name", names[structure]), ("kind", "college"))] = (
            [1.0] * len(at))
    for structure in (*STRUCTURES, "all"):
        for weekday in range(1, 8):
            for hour in range(24):
                series[("ent_logins_by_hour", ("structure", structure), ("weekday", str(weekday)),
                        ("hour", str(hour)))] = [float((weekday * hour) % 7)] * len(at)
    collectors = {"logins": ("instant", 60), "visitors": ("hourly", 3600), "accounts": ("daily", 86400)}
    for collector, (cadence, seconds) in collectors.items():
        series[("ent_exporter_collector_cadence_seconds", ("collector", collector), ("cadence", cadence))] = (
            [float(seconds)] * len(at))
        series[("ent_exporter_collector_last_success_timestamp_seconds", ("collector", collector))] = [
            float(t - t % seconds) for t in at]
        series[("ent_exporter_collector_duration_seconds", ("collector", collector))] = [0.5] * len(at)
    for family in ("ent_logins_total", "ent_unique_visitors"):
        series[("ent_exporter_series", ("family", family))] = [40.0] * len(at)
        series[("ent_exporter_folded_series_total", ("family", family))] = [0.0] * len(at)
    series[("ent_exporter_source_up",)] = [1.0] * len(at)
    series[("up",)] = [1.0] * len(at)
    series[("scrape_duration_seconds",)] = [0.01] * len(at)
    series[("scrape_samples_scraped",)] = [900.0] * len(at)
    series[("process_resident_memory_bytes",)] = [5e7] * len(at)
    series[("process_open_fds",)] = [12.0] * len(at)
    series[("process_max_fds",)] = [1024.0] * len(at)
    series[("process_start_time_seconds",)] = [START.timestamp()] * len(at)
    series[("process_cpu_seconds_total",)] = [float(index) for index in range(len(at))]
    probes = {"ent_connector_probe_success": 1.0, "ent_connector_certificate_expiry_timestamp_seconds": 2e9}
    for name, value in probes.items():
        series[(name, ("connector", "pronote"), ("kind", "http"))] = [value] * len(at)
    return series


def openmetrics(counters: dict, gauges: dict) -> str:
    """OpenMetrics text: one family at a time, every series in time order, timestamps pinned."""
    lines = []
    families: dict[str, list] = defaultdict(list)
    for every, series in ((SCRAPE, counters), (GAUGE_EVERY, gauges)):
        for key, values in series.items():
            families[key[0]].append((key, values, scrape_times(every)))
    for name in sorted(families):
        lines.append(f"# TYPE {name} unknown")
        for key, values, at in sorted(families[name], key=lambda item: item[0]):
            labels = ",".join(f'{k}="{v}"' for k, v in (*JOB.items(), *key[1:]))
            lines.extend(f"{name}{{{labels}}} {value:g} {t}" for value, t in zip(values, at))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


# -- Prometheus ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def history(tmp_path_factory):
    work = tmp_path_factory.mktemp("history")
    data = generate()
    (work / "history.om").write_text(openmetrics(counter_series(data), gauge_series(data)))
    tsdb = work / "tsdb"
    created = subprocess.run([require_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                              str(work / "history.om"), str(tsdb)], capture_output=True, text=True, timeout=600)
    assert created.returncode == 0, created.stdout + created.stderr
    port = free_port()
    (work / "prometheus.yml").write_text("global: {}\n")
    prometheus = subprocess.Popen(
        [require_binary("prometheus"), f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={tsdb}",
         "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=(work / "prometheus.log").open("w"), stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _ready(port), 120, message="Prometheus serving the backfilled blocks")
        yield {"port": port, "data": data}
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)


def _ready(port: int) -> bool:
    try:
        return bool(query(port, "ent_logins_total", NOW.timestamp()))
    except OSError:
        return False


def _get(port: int, path: str, **params) -> dict:
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def query(port: int, expr: str, at: float) -> list[dict]:
    return _get(port, "/api/v1/query", query=expr, time=at)["data"]["result"]


def query_range(port: int, expr: str, start: int, end: int, step: int) -> list[dict]:
    return _get(port, "/api/v1/query_range", query=expr, start=start, end=end, step=step)["data"]["result"]


# -- what Grafana sends ------------------------------------------------------------------------

NICE = [60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


def duration(text: str) -> int:
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]


def grafana_interval(panel: dict, seconds: int) -> int:
    """The panel's $__interval: range ÷ maxDataPoints, at least its minimum interval, rounded up to a
    round duration (Grafana's own rounding is finer; any value the panel may get is as good here)."""
    raw = seconds / (panel.get("maxDataPoints") or DEFAULT_MAX_POINTS)
    raw = max(raw, duration(panel["interval"]) if panel.get("interval") else SCRAPE)
    return next((nice for nice in NICE if nice >= raw), math.ceil(raw / 86400) * 86400)


def variables(panel: dict, seconds: int, structure: str) -> dict[str, str]:
    interval = grafana_interval(panel, seconds)
    return {"structure": structure, "profile": ".*", "connector": ".*", "app": ".*", "instance": ".*", "class": ".*",
            "__range": f"{seconds}s", "__range_s": str(seconds), "__interval": f"{interval}s",
            "__interval_ms": str(interval * 1000), "__rate_interval": f"{max(interval + SCRAPE, 4 * SCRAPE)}s"}


def panels() -> dict[tuple[str, str], dict]:
    return {(d["title"], p["title"]): p for d in load_dashboards().values() for p in iter_panels(d)
            if p.get("targets")}


def evaluate(port: int, panel: dict, seconds: int, structure: str = "all") -> list[tuple[dict, list]]:
    """[(target, result)] for each target of the panel, as Grafana would ask for the range ending at NOW."""
    values = variables(panel, seconds, structure)
    step = grafana_interval(panel, seconds)
    out = []
    for target in panel["targets"]:
        expr = substitute(target["expr"], values)
        if target.get("instant"):
            out.append((target, query(port, expr, NOW.timestamp())))
        else:
            end = int(NOW.timestamp()) // step * step
            start = (int(NOW.timestamp()) - seconds) // step * step
            out.append((target, query_range(port, expr, start, end, step)))
    return out


# -- truths -------------------------------------------------------------------------------------

def count(events, since: float, until: float, **where) -> int:
    """Events in (since, until], filtered on fields by name."""
    return sum(1 for event in events if since < event["t"] <= until and all(event[k] == v for k, v in where.items()))


def login_rows(data: dict) -> list[dict]:
    return [{"user": u, "profile": p, "t": t} for u, p, t in data["logins"]]


def call_rows(data: dict) -> list[dict]:
    return [{"connector": c, "success": s, "t": t} for c, s, _d, t in data["calls"]]


# -- tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("window", list(RANGES))
def test_every_panel_query_evaluates_at_every_range(history, window):
    """Prometheus accepts every query of every panel at the range, as Grafana sends it, and the panels
    fed by the backfilled families have data."""
    failed, empty = [], []
    for (dashboard, title), panel in panels().items():
        try:
            results = evaluate(history["port"], panel, RANGES[window], "S1")
        except urllib.error.HTTPError as error:
            failed.append(f"{dashboard} / {title}: {error.read().decode()}")
            continue
        text = json.dumps(panel["targets"])
        # Families the generated history does not hold (alerts, probes, and issue 16's optional
        # relations: classes, courses, account feeds — their panels are checked on the demo, end to end).
        backfilled = not any(name in text for name in ("ALERTS", "ent_connector_probe", ":ent_connector",
                                                         "ent_class_", "ent_course_", "ent_account_feed_"))
        if backfilled and not any(result for _target, result in results):
            empty.append(f"{dashboard} / {title}")
    assert not failed, "\n".join(failed)
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.parametrize("window", list(RANGES))
def test_connections_in_the_period_equal_the_raw_count(history, window):
    panel = panels()[("ENT overview", "Connections")]
    ((_target, result),) = evaluate(history["port"], panel, RANGES[window])
    truth = count(login_rows(history["data"]), NOW.timestamp() - RANGES[window], NOW.timestamp())
    assert float(result[0]["value"][1]) == pytest.approx(truth, abs=1e-6)


@pytest.mark.parametrize("window", list(RANGES))
def test_daily_bars_hold_the_logins_of_each_day_by_profile(history, window):
    """Each bar is the raw count of the 24 hours before it, per profile: at 7 days as at 90 days (no
    2-hour bars labelled "per interval", no day missing)."""
    panel = panels()[("ENT overview", "Connections per day by profile")]
    ((_target, result),) = evaluate(history["port"], panel, RANGES[window])
    rows = login_rows(history["data"])
    assert result
    bars = 0
    for series in result:
        profile = series["metric"]["profile"]
        for at, value in series["values"]:
            assert float(value) == pytest.approx(count(rows, at - 86400, at, profile=profile), abs=1e-6), (profile, at)
            bars += 1
    assert bars >= len(PROFILES)


@pytest.mark.parametrize("window", list(RANGES))
def test_logins_per_hour_count_every_login_at_every_range(history, window):
    """The establishment's logins per hour: each point is the raw count over its window, per hour; the
    windows cover the whole range (a 5-minute recording rule at 90 days would see 1 window in 50)."""
    panel = panels()[("ENT establishment", "Logins per hour")]
    values = variables(panel, RANGES[window], "all")
    window_s = int(values["__rate_interval"][:-1])
    step = grafana_interval(panel, RANGES[window])
    assert window_s >= step  # every login falls in some point's window
    ((_target, result),) = evaluate(history["port"], panel, RANGES[window])
    rows = login_rows(history["data"])
    for series in result:
        profile = series["metric"]["profile"]
        for at, value in series["values"]:
            if at - window_s < START.timestamp():
                continue  # the window reaches before the history: rate() extrapolates, no raw truth there
            expected = count(rows, at - window_s, at, profile=profile) / window_s * 3600
            assert float(value) == pytest.approx(expected, rel=1e-9, abs=1e-9), (profile, at)


@pytest.mark.parametrize("window", list(RANGES))
def test_failure_ratio_is_raw_and_hides_low_traffic_like_the_alert(history, window):
    panel = panels()[("ENT connectors", "Failure ratio")]
    values = variables(panel, RANGES[window], "all")
    window_s = int(values["__rate_interval"][:-1])
    ((_target, result),) = evaluate(history["port"], panel, RANGES[window])
    calls = call_rows(history["data"])
    drawn = {series["metric"]["connector"]: {at: float(v) for at, v in series["values"]} for series in result}
    step = grafana_interval(panel, RANGES[window])
    start = (int(NOW.timestamp()) - RANGES[window]) // step * step
    checked = 0
    for connector in CONNECTORS:
        for at in range(start, int(NOW.timestamp()) // step * step + 1, step):
            if at - window_s < START.timestamp():
                continue
            total = count(calls, at - window_s, at, connector=connector)
            if total / window_s * 60 < MIN_CALLS_PER_MINUTE:
                assert at not in drawn.get(connector, {}), (connector, at, "drawn under the traffic guard")
                continue
            failed = count(calls, at - window_s, at, connector=connector, success=False)
            assert drawn[connector][at] == pytest.approx(failed / total), (connector, at)
            checked += 1
    assert checked
    assert "cas" not in drawn, "one failure in three calls at night is not drawn"


def test_the_outage_shows_at_ninety_days(history):
    """At 90 days (steps of hours) the hour-long outage of pronote still shows in the failure ratio:
    the raw counter's window covers it, where a 5-minute recording rule sampled every few hours would
    mostly miss it."""
    panel = panels()[("ENT connectors", "Failure ratio")]
    ((_target, result),) = evaluate(history["port"], panel, RANGES["90d"])
    pronote = next(series for series in result if series["metric"]["connector"] == "pronote")
    assert max(float(v) for _at, v in pronote["values"]) > 0.1


@pytest.mark.parametrize("window", list(RANGES))
def test_collector_failure_bars_count_the_failures_of_their_interval(history, window):
    """Each bar is the failed runs of its own interval (increase over $__interval, not over
    $__rate_interval): the bars of the period add up to its failures, at any range."""
    panel = panels()[("ENT exporter health", "Collector failures")]
    ((_target, result),) = evaluate(history["port"], panel, RANGES[window])
    step = grafana_interval(panel, RANGES[window])
    failures = history["data"]["failures"]
    shown, truth = 0.0, 0
    for series in result:
        for at, value in series["values"]:
            if at - step < START.timestamp():
                continue  # the interval reaches before the history
            expected = sum(1 for t in failures if at - step < t <= at)
            assert float(value) == pytest.approx(expected, abs=1e-6), at
            shown, truth = shown + float(value), truth + expected
    assert shown == pytest.approx(truth) and (truth > 0 or RANGES[window] <= 3600)


@pytest.mark.parametrize("structure", ["all", "S1"])
def test_headline_visitors_count_a_two_profile_user_once(history, structure):
    data = history["data"]
    truth, ratios = visitors_at(data, NOW.replace(minute=5) - timedelta(hours=1), "month")
    panel = panels()[("ENT overview", "Unique visitors")]
    month = dict((t["refId"], r) for t, r in evaluate(history["port"], panel, RANGES["7d"], structure))["A"]
    shown = float(month[0]["value"][1])
    assert shown == truth[(structure, "all")]
    per_profile = sum(v for (s, p), v in truth.items() if s == structure and p != "all")
    assert shown < per_profile  # two-hats logged in as Teacher and as Personnel: one visitor
    visits = panels()[("ENT overview", "Visits per visitor")]
    month = dict((t["refId"], r) for t, r in evaluate(history["port"], visits, RANGES["7d"], structure))["A"]
    assert float(month[0]["value"][1]) == pytest.approx(ratios[(structure, "all")])
    by_profile = panels()[("ENT overview", "Unique visitors today and this week by profile")]
    today = dict((t["refId"], r) for t, r in evaluate(history["port"], by_profile, RANGES["7d"], structure))["A"]
    day, _ = visitors_at(data, NOW.replace(minute=5) - timedelta(hours=1), "day")
    assert {r["metric"]["profile"]: float(r["value"][1]) for r in today} == {
        p: day.get((structure, p), 0.0) for p in PROFILES}
