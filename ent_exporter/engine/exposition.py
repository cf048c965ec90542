"""The exposition: every collector's last samples, rendered once per change.

A scrape serves bytes rendered when a collector last published (plain and gzipped),
so it costs a memory copy, never a query or a render. Families are rendered one by
one with prometheus-client and cached, so a change re-renders only what changed.
Two collectors may publish into one family (e.g. the hourly and the monthly visitor
collectors): their series are merged under a single HELP/TYPE.
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import cast

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from ent_exporter.engine import privacy
from ent_exporter.engine.collector import (
    Family,
    HistogramValue,
    Kind,
    LabelValues,
    Samples,
    Value,
    label,
    marginal_keys,
)

log = logging.getLogger(__name__)

OTHER = "other"
CHUNK = 64 * 1024  # families smaller than this are written to the socket together
# gzip levels: 6 (zlib's default) for what changes at most hourly; 1 for the families of publishers that
# publish every minute (the counters), gzipped again whole each time: a third of level 6's time, for
# 10-20 % more bytes of those families (about 25 kB of a regional body's 750 kB).
GZIP_LEVEL, GZIP_LEVEL_FREQUENT = 6, 1


@dataclass(frozen=True)
class Policy:
    """What the exporter enforces on every family before publishing it."""

    max_series_per_family: int = 200_000
    privacy_min_count: int = 0
    # The breakdowns enabled in the configuration (Family.breakdown_option names): published whole,
    # the others within the series budget. None (an exposition built without a configuration): all whole.
    breakdowns: frozenset[str] | None = None


def structure_marginals(family: Family, series: Mapping[LabelValues, Value]) -> dict[LabelValues, Value]:
    """The series budget's shape of a heavy breakdown (Family.structure_marginals): structure="all"
    whole; every other structure as one marginal per listed label (that label "all", summed; for
    people counts and non-additive families such as ratios, the collector's own "all" series)."""
    structure, positions = family.marginal_positions()
    shaped: dict[LabelValues, Value] = {}
    for key, value in series.items():
        if key[structure] == "all":
            shaped[key] = value
            continue
        if family.counts_people or not family.additive:
            # People are never summed, nor are ratios: their marginal is the series the collector
            # computed with that label "all" (each person once; the ratio over everyone), kept; the
            # others are left out.
            if all(key[position] == "all" for position in positions):
                shaped[key] = value
            continue
        for marginal in marginal_keys(key, positions):
            shaped[marginal] = _merge(shaped[marginal], value) if marginal in shaped else value
    return shaped


def updated_marginals(
    family: Family,
    shaped: dict[LabelValues, Value],
    before: Mapping[LabelValues, Value],
    after: Mapping[LabelValues, Value],
    moved: Iterable[LabelValues] | None = None,
) -> tuple[dict[LabelValues, Value], set[LabelValues]] | None:
    """structure_marginals(family, after), from its value for ``before``: the changes added to the
    marginals they fall in (a counter's minute moves a few thousand of its series, not the 80,000);
    and the marginals that changed. ``moved``: the series of ``after`` that are new or changed, when
    the caller knows them (no series gone); else they are found by comparison. None where that does
    not apply (histograms, people counts, ratios, series gone): recompute."""
    if family.counts_people or not family.additive or (moved is None and before.keys() - after.keys()):
        return None
    get = before.get
    changed = (
        [(key, value) for key, value in after.items() if get(key) != value]
        if moved is None
        else [(key, after[key]) for key in moved]
    )
    if any(type(value) is not float or type(get(key, 0.0)) is not float for key, value in changed):
        return None
    structure, positions = family.marginal_positions()
    result = dict(shaped)
    touched: set[LabelValues] = set()
    for key, value in changed:
        if key[structure] == "all":
            result[key] = value
            touched.add(key)
            continue
        delta = value - get(key, 0.0)  # type: ignore[operator]  # (floats: checked above)
        for marginal in marginal_keys(key, positions):
            result[marginal] = result.get(marginal, 0.0) + delta  # type: ignore[operator]
            touched.add(marginal)
    return result, touched


def _in_budget_shape(family: Family, keys: Iterable[LabelValues]) -> bool:
    """Whether these series are their own marginals in the series budget's shape: structure "all", or the
    one marginal label (Family.structure_marginals) "all" already."""
    structure, positions = family.marginal_positions()
    if len(positions) != 1 or family.counts_people or not family.additive:
        return False
    position = positions[0]
    return all(key[structure] == "all" or key[position] == "all" for key in keys)


class _OneFamily:
    """The registry shape generate_latest wants, for a single metric family."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterable[Metric]:
        yield self.metric


def to_metric(family: Family, series: Mapping[LabelValues, Value]) -> Metric:
    """A prometheus-client metric family holding the given series, sorted for stable output."""
    labels = list(family.labels)
    if family.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM):
        histogram = HistogramMetricFamily(family.name, family.help, labels=labels)
        for label_values, value in sorted(series.items()):
            assert isinstance(value, HistogramValue), (family.name, value)
            buckets = [(floatToGoString(bound), count) for bound, count in zip(family.buckets, value.buckets)]
            buckets.append(("+Inf", value.count))
            histogram.add_metric(list(label_values), buckets=buckets, sum_value=value.sum)
        return histogram
    metric = (CounterMetricFamily if family.kind is Kind.COUNTER else GaugeMetricFamily)(
        family.name, family.help, labels=labels
    )
    for label_values, value in sorted(series.items()):
        assert not isinstance(value, HistogramValue), (family.name, value)
        metric.add_metric(list(label_values), value)
    return metric


def render_family_reference(family: Family, series: Mapping[LabelValues, Value]) -> bytes:
    """The family rendered by prometheus-client (what render_family reproduces byte for byte, faster)."""
    return generate_latest(_OneFamily(to_metric(family, series)))


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


_ESCAPED = re.compile(r'[\\\n"]')


def _needs_escaping(keys: Iterable[LabelValues]) -> bool:
    """Whether any label value holds a character the text format escapes (one C-level search per key)."""
    search = _ESCAPED.search
    return any(search("".join(key)) for key in keys)


def _line_template(name: str, labels: tuple[str, ...], extra: str | None = None) -> str:
    """A str.format template of one sample line: label values by position in the series' key (the
    extra label's value after them), then the value; label names in alphabetical order, as
    prometheus-client writes them."""
    all_names = labels + ((extra,) if extra else ())
    order = sorted(range(len(all_names)), key=lambda i: all_names[i])
    inside = ",".join(f'{all_names[i]}="{{{i}}}"' for i in order)
    braces = f"{{{{{inside}}}}}" if inside else ""
    return f"{name}{braces} {{{len(all_names)}}}\n"


class RenderedLines:
    """A family's last render, kept between renders: its series in output order with each one's
    value and sample lines. A re-render over the same series formats only those whose value
    changed and joins the lines again; new or gone series render the family whole."""

    __slots__ = ("position", "values", "lines")

    def __init__(self) -> None:
        self.position: dict[LabelValues, int] = {}  # each series' line, in output (sorted) order
        self.values: dict[LabelValues, Value] = {}
        self.lines: list[str] = []


class _Formatter:
    """Formats the sample lines of one family (templates built once, each distinct value once)."""

    def __init__(self, family: Family) -> None:
        name = family.name
        self.histogram = family.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM)
        self.line = _line_template(name, family.labels).format
        if self.histogram:
            self.bounds = [floatToGoString(bound) for bound in family.buckets] + ["+Inf"]
            self.bucket = _line_template(f"{name}_bucket", family.labels, "le").format
            self.count = _line_template(f"{name}_count", family.labels).format
            self.total = _line_template(f"{name}_sum", family.labels).format
        self.formatted: dict[float, str] = {}

    def number(self, value: float) -> str:
        text = self.formatted.get(value)
        if text is None:
            text = self.formatted[value] = floatToGoString(value)
        return text

    def __call__(self, key: LabelValues, value: Value, escaping: bool) -> tuple[Value, str]:
        """The value to keep (a copy for histograms, which are mutable) and the series' lines."""
        label_values = tuple(_escape_value(v) for v in key) if escaping else key
        number = self.number
        if not self.histogram:
            return value, self.line(*label_values, number(value))  # type: ignore[arg-type]
        buckets, count, total = value.buckets, value.count, value.sum  # type: ignore[union-attr]
        text = "".join(
            [
                *(
                    self.bucket(*label_values, bound, number(observed))
                    for bound, observed in zip(self.bounds, [*buckets, count])
                ),
                self.count(*label_values, number(count)),
                self.total(*label_values, number(total)),
            ]
        )
        return HistogramValue(list(buckets), count, total), text


def _header(family: Family) -> str:
    help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
    kind = "histogram" if family.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM) else family.kind.value
    return f"# HELP {family.name} {help_text}\n# TYPE {family.name} {kind}\n"


def _joined(header: str, lines: list[str]) -> bytes:
    # Encoded every few thousand lines: no whole-family str beside the bytes.
    parts = [header.encode()]
    for start in range(0, len(lines), 4096):
        parts.append("".join(lines[start : start + 4096]).encode())
    return b"".join(parts)


def render_family(
    family: Family,
    series: Mapping[LabelValues, Value],
    rendered: RenderedLines | None = None,
    moved: Iterable[LabelValues] | None = None,
) -> bytes:
    """The text exposition (format 0.0.4) of one family, byte for byte what prometheus-client's
    generate_latest writes for it (see render_family_reference), several times faster: each
    sample line is one str.format of a template built once per family, each distinct value
    formatted once.

    ``rendered`` (kept by the caller between renders) makes a re-render over the same series
    format only the series whose value changed, in place, then join the lines: no sort, no pass
    of Python per unchanged series beyond comparing its value. It is updated to hold exactly the
    series rendered. ``moved``: the series that may have changed, when the caller knows them (no
    series gone): not even a comparison for the others."""
    format_series = _Formatter(family)
    if rendered is not None and rendered.position:
        values, position, lines = rendered.values, rendered.position, rendered.lines
        if moved is not None:
            moved = list(moved)
            same = len(series) == len(position) and all(key in position for key in moved)
            changed = [key for key in moved if values[key] != series[key]] if same else []
        else:
            same = series.keys() == values.keys()
            changed = [key for key, value in series.items() if values[key] != value] if same else []
        if same:
            escaping = _needs_escaping(changed)
            if format_series.histogram or escaping:
                for key in changed:
                    values[key], lines[position[key]] = format_series(key, series[key], escaping)
            else:  # (the common case, inline: a minute re-formats thousands of counters)
                line, number = format_series.line, format_series.number
                for key in changed:
                    value = values[key] = series[key]
                    lines[position[key]] = line(*key, number(value))  # type: ignore[arg-type]  # (not histograms)
            return _joined(_header(family), lines)
    keys = sorted(series)
    escaping = _needs_escaping(keys)
    values_and_lines = [format_series(key, series[key], escaping) for key in keys]
    lines = [text for _, text in values_and_lines]
    if rendered is not None:
        rendered.position = {key: number for number, key in enumerate(keys)}
        rendered.values = {key: value for key, (value, _) in zip(keys, values_and_lines)}
        rendered.lines = lines
    return _joined(_header(family), lines)


def _snapshot(series: Mapping[LabelValues, Value]) -> tuple[dict[LabelValues, Value], bool]:
    """A copy that a publisher's later changes cannot reach (histogram values are mutable), with
    every label value under the one rule (ent_exporter.engine.collector.label: NULL or empty -> "unknown"; the
    series that this makes equal are added up); and whether any label value was so replaced."""
    if series and isinstance(next(iter(series.values())), HistogramValue):
        copy = {
            key: HistogramValue(list(value.buckets), value.count, value.sum)
            if isinstance(value, HistogramValue)
            else value
            for key, value in series.items()
        }
    else:
        copy = dict(series)  # floats: immutable, a C-level copy
    values = set().union(*copy)  # every label value once (C loops)
    if "" not in values and None not in values:
        return copy, False
    labelled: dict[LabelValues, Value] = {}
    for key, value in copy.items():
        key = tuple(label(v) for v in key)
        labelled[key] = _merge(labelled[key], value) if key in labelled else value
    return labelled, True


def _weight(value: Value) -> float:
    return value.count if isinstance(value, HistogramValue) else abs(value)


def _merge(a: Value, b: Value) -> Value:
    if isinstance(a, HistogramValue) and isinstance(b, HistogramValue):
        merged = HistogramValue(list(a.buckets), a.count, a.sum)
        merged.add(b)
        return merged
    return a + b  # type: ignore[operator]


def fold_rare_values(
    family: Family, series: dict[LabelValues, Value], cap: int
) -> tuple[dict[LabelValues, Value], int]:
    """Folds the rarest values of the most diverse labels into "other" until at most ``cap`` series remain.

    Returns the folded series and how many series were folded away. Non-additive
    families (ratios) lose their folded series instead of summing them meaninglessly.
    """
    folded_away = 0
    folded_positions: set[int] = set()
    while len(series) > cap:
        candidates = [i for i in range(len(family.labels)) if i not in folded_positions]
        if not candidates:
            break
        position = max(candidates, key=lambda i: len({key[i] for key in series}))
        folded_positions.add(position)
        weights: dict[str, float] = {}
        for key, value in series.items():
            weights[key[position]] = weights.get(key[position], 0.0) + _weight(value)
        distinct = len(weights)
        # Keep as many of the most used values as the cap allows, leaving room for "other".
        keep_count = max(1, (distinct * cap) // len(series) - 1)
        kept = set(sorted(weights, key=lambda v: (-weights[v], v))[:keep_count])
        result: dict[LabelValues, Value] = {}
        for key, value in series.items():
            if key[position] in kept:
                result[key] = _merge(result[key], value) if key in result else value
            elif family.additive:
                other = key[:position] + (OTHER,) + key[position + 1 :]
                result[other] = _merge(result[other], value) if other in result else value
        folded_away += len(series) - len(result)
        series = result
    if len(series) > cap:
        # Every label already folded: keep the heaviest series rather than grow without bound.
        heaviest = sorted(series, key=lambda k: (-_weight(series[k]), k))[:cap]
        folded_away += len(series) - cap
        series = {key: series[key] for key in heaviest}
    return series, folded_away


def apply_privacy(
    family: Family, series: dict[LabelValues, Value], min_count: int
) -> tuple[dict[LabelValues, Value], set[LabelValues]]:
    """The series of a people-counting family as published under privacy.min_count, and the label
    values whose count is withheld (ent_exporter.engine.privacy: small counts, and those a published
    total minus its published cells would give back).

    Gauges: withheld counts are 0. Counters: small counts are 0 until they reach the threshold (then
    published as they are: monotonic, rate()/increase() see every event, the first ones at the
    crossing, never a reset); a total is at most the sum of its published cells. Histograms of people:
    each bucket's people (not cumulative) are the counts, withheld like the others across series;
    the cumulative counts and _count are those of the published buckets (non-decreasing), and a series
    whose every bucket is withheld is all 0."""
    if not (family.counts_people and min_count > 0):
        return series, set()
    if family.kind in (Kind.HISTOGRAM, Kind.GAUGE_HISTOGRAM):
        people: dict[tuple[str | int, ...], float] = {}
        for key, value in series.items():
            assert isinstance(value, HistogramValue)
            previous = 0.0
            for position, bound_count in enumerate([*value.buckets, value.count]):
                people[(*key, position)] = bound_count - previous
                previous = bound_count
        published_people, withheld_people = privacy.protect(people, min_count)
        protected: dict[LabelValues, Value] = {}
        for key, value in series.items():
            assert isinstance(value, HistogramValue)
            cumulative, running = [], 0.0
            for position in range(len(value.buckets) + 1):
                running += published_people[(*key, position)]
                cumulative.append(running)
            total = cumulative[-1]
            protected[key] = HistogramValue(cumulative[:-1], total, value.sum if total else 0.0)
        return protected, {cast(LabelValues, key[:-1]) for key in withheld_people}
    if family.nested is not None:
        nested, withheld = privacy.protect_nested(
            family.labels.index(family.nested), cast(dict[LabelValues, float], series), min_count
        )
        return cast(dict[LabelValues, Value], nested), withheld
    published, withheld = privacy.protect(
        cast(dict[LabelValues, float], series), min_count, monotonic=family.kind is Kind.COUNTER
    )
    return cast(dict[LabelValues, Value], published), withheld


class Exposition:
    """Thread-safe holder of the rendered /metrics body."""

    def __init__(self, families: Iterable[Family], policy: Policy = Policy()) -> None:
        self.policy = policy
        declared: dict[str, Family] = {}
        for family in families:
            if declared.setdefault(family.name, family) != family:
                raise ValueError(f"family {family.name} is declared twice, differently")
        self._families = {name: self._published_form(family) for name, family in declared.items()}
        self._samples: dict[str, dict[str, dict[LabelValues, Value]]] = {}  # family -> publisher -> series
        self._texts: dict[str, bytes] = {}  # family -> its rendered text
        self._gzip_members: dict[str, bytes] = {}  # family -> its text, gzipped
        self._last_folded: dict[str, int] = {}  # family -> series folded by its last render
        self._lines: dict[str, RenderedLines] = {}  # family -> its last render's series and lines
        self._series_counts: dict[str, int] = {}
        self._shaped: dict[str, dict[LabelValues, Value]] = {}  # family -> its series budget's shape at the last render
        self._folded_totals: dict[str, float] = {}
        self._withheld: dict[str, set[LabelValues]] = {}  # people-counting family -> its withheld label values
        self._lock = threading.Lock()
        self._plain: tuple[tuple[bytes, ...], int] = ((), 0)
        empty = gzip.compress(b"")
        self._gzipped: tuple[tuple[bytes, ...], int] = ((empty,), len(empty))
        self.renders = 0  # how many times a body was built (scrapes never build one)

    def _published_form(self, family: Family) -> Family:
        if family.counts_people and self.policy.privacy_min_count > 0:
            note = (
                f" Counts below {self.policy.privacy_min_count}, and those a total minus its other counts would"
                " give back, are published as 0 (privacy.min_count)."
            )
            return replace(family, help=family.help + note)
        return family

    def _followers(self, names: Iterable[str]) -> list[str]:
        """The ratio families (Family.privacy_follows) of these families that have series, to render again
        after them (their withheld counts decide which of the ratio's series are published)."""
        if self.policy.privacy_min_count <= 0:
            return []
        names = set(names)
        return [
            name
            for name, family in self._families.items()
            if name not in names and name in self._samples and names.intersection(family.privacy_follows)
        ]

    @property
    def families(self) -> dict[str, Family]:
        return dict(self._families)

    def declare(self, families: Iterable[Family]) -> None:
        """Adds the families of a publisher that is not a collector (the probes), before it publishes."""
        with self._lock:
            for family in families:
                published = self._published_form(family)
                if self._families.setdefault(family.name, published) != published:
                    raise ValueError(f"family {family.name} is declared twice, differently")

    def publish(
        self,
        updates: Mapping[str, Samples],
        moved: Mapping[str, Mapping[str, Iterable[LabelValues]]] | None = None,
        *,
        frequent: bool = False,
    ) -> None:
        """For each publisher, replaces its series of the families it gives; re-renders those families once.

        A family whose series are all unchanged is not rendered again (a minute without new
        events republishes every counter as it was). ``moved`` ({publisher: {family: label values}}):
        for some families, the series new or changed since the publisher's last update, none gone,
        when the publisher knows them; the others are found by comparison. ``frequent``: the publishers
        publish every minute or so (their families are gzipped faster, a little larger)."""
        with self._lock:
            changed = set()
            previous: dict[str, Mapping[LabelValues, Value] | None] = {}  # a family's series before this update
            hints: dict[str, list[LabelValues]] = {}
            for publisher, samples in updates.items():
                known = (moved or {}).get(publisher, {})
                for name, series in samples.items():
                    if name not in self._families:
                        raise KeyError(f"{publisher} published undeclared family {name}")
                    published = self._samples.setdefault(name, {})
                    hint = known.get(name)
                    hint = list(hint) if hint is not None and name in self._texts and publisher in published else None
                    if name in self._texts and (not hint if hint is not None else published.get(publisher) == series):
                        # Unchanged: what the guard folded is folded again, as a render would count it.
                        if self._last_folded.get(name):
                            self._folded_totals[name] += self._last_folded[name]
                        continue
                    previous[name] = published.get(publisher)
                    published[publisher], relabelled = _snapshot(series)
                    if hint is not None and not relabelled:
                        hints[name] = hint
                    changed.add(name)
            if not changed:
                return
            changed.update(self._followers(changed))
            level = GZIP_LEVEL_FREQUENT if frequent else GZIP_LEVEL
            # The counts first, then the ratios that follow them (privacy.min_count).
            order = sorted(changed, key=lambda name: (bool(self._families[name].privacy_follows), name))
            texts = {name: self._render(name, previous.get(name), hints.get(name), level) for name in order}
            self._rebuild(texts)

    def _render(
        self,
        name: str,
        before: Mapping[LabelValues, Value] | None = None,
        moved: Iterable[LabelValues] | None = None,
        level: int = GZIP_LEVEL,
    ) -> bytes:
        """Renders one family: returns its text, keeps its gzip member. ``before``: the series its
        one publisher had before this update (the budget's marginals are then updated, not recomputed);
        ``moved``: its series new or changed since then, none gone (see publish)."""
        family = self._families[name]
        publishers = list(self._samples.get(name, {}).values())
        if len(publishers) == 1:
            merged = publishers[0]  # read only below: no copy
        else:
            merged = {}
            for series in publishers:
                merged.update(series)
            moved = None
        if (
            family.structure_marginals
            and self.policy.breakdowns is not None
            and family.breakdown_option not in self.policy.breakdowns
        ):
            shaped = self._shaped.get(name)
            if shaped is not None and shaped is before and moved is not None and _in_budget_shape(family, moved):
                # Its publisher counts in the budget's shape already (an instant counter summing in SQL), as it
                # did last time (its series were then their own marginals): nothing to add up, the same moves.
                self._shaped[name] = merged
            else:
                updated = (
                    updated_marginals(family, shaped, before, merged, moved)
                    if shaped is not None and before is not None and len(publishers) == 1
                    else None
                )
                unshaped = merged
                merged, moved = updated if updated is not None else (structure_marginals(family, merged), None)
                # Kept as the very publisher's series when they are their own marginals (see above).
                self._shaped[name] = unshaped if len(publishers) == 1 and merged == unshaped else merged
        if self.policy.privacy_min_count > 0 and (family.counts_people or family.privacy_follows):
            merged, moved = self._private(family, merged), None
        self._last_folded[name] = 0
        if len(merged) > self.policy.max_series_per_family:
            merged, folded = fold_rare_values(family, merged, self.policy.max_series_per_family)
            if name not in self._folded_totals:
                log.warning(
                    "%s: more than %d series; the rarest label values are folded into %r "
                    "(see ent_exporter_folded_series_total)",
                    name,
                    self.policy.max_series_per_family,
                    OTHER,
                )
            self._folded_totals[name] = self._folded_totals.get(name, 0.0) + folded
            self._last_folded[name] = folded
            moved = None
        self._series_counts[name] = len(merged)
        text = render_family(family, merged, self._lines.setdefault(name, RenderedLines()), moved) if merged else b""
        self._gzip_members[name] = gzip.compress(text, compresslevel=level) if text else b""
        return text

    def _private(self, family: Family, series: dict[LabelValues, Value]) -> dict[LabelValues, Value]:
        """A family's series under privacy.min_count: a people count's withheld counts are kept for the
        ratios that follow it; a ratio's series whose counts are withheld are left out."""
        if family.counts_people:
            series, self._withheld[family.name] = apply_privacy(family, series, self.policy.privacy_min_count)
        hidden: set[tuple[Hashable, ...]] = set()
        for name in family.privacy_follows:
            source = self._families.get(name)
            if source is not None:
                hidden |= privacy.withheld_among(self._withheld.get(name, ()), source.labels, family.labels)
        if hidden:
            series = {key: value for key, value in series.items() if key not in hidden}
        return series

    def _rebuild(self, texts: Mapping[str, bytes]) -> None:
        # The body is kept as the families' texts, in name order, never joined into one copy:
        # a change allocates the changed family's text only, and the server writes the chunks
        # one after the other. Families smaller than CHUNK are grouped, so a scrape is a few
        # writes. Concatenated gzip members form one valid gzip stream (RFC 1952), so each
        # family is compressed once, when it changes, not the whole body every time.
        self._texts.update(texts)
        chunks: list[bytes] = []
        small: list[bytes] = []
        for name in sorted(self._texts):
            text = self._texts[name]
            if len(text) >= CHUNK:
                if small:
                    chunks.append(b"".join(small))
                    small = []
                chunks.append(text)
            elif text:
                small.append(text)
        if small:
            chunks.append(b"".join(small))
        gzipped = b"".join(self._gzip_members[name] for name in sorted(self._gzip_members)) or gzip.compress(b"")
        self._plain = (tuple(chunks), sum(map(len, chunks)))  # one reference, swapped at once
        self._gzipped = ((gzipped,), len(gzipped))
        self.renders += 1

    def rendered(self, name: str) -> RenderedLines | None:
        """What the last render of a family kept, its series in output order and their lines (None: not
        rendered yet): read only, for tests and benchmarks of the incremental render."""
        return self._lines.get(name)

    def series_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._series_counts)

    def folded_totals(self) -> dict[str, float]:
        with self._lock:
            return dict(self._folded_totals)

    def body(self, gzipped: bool = False) -> bytes:
        """The whole exposition as one bytes object (joined on each call: scrapes use chunks())."""
        return b"".join(self.chunks(gzipped)[0])

    def chunks(self, gzipped: bool = False) -> tuple[tuple[bytes, ...], int]:
        """The exposition as chunks to write one after the other, and their total length.

        A reference swap under the GIL: no lock needed to read a consistent pair."""
        return self._gzipped if gzipped else self._plain
