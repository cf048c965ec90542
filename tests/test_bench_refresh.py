"""bench/refresh.py at a tiny scale, so it cannot rot: the samples one refresh of the regional dashboard reads
at a year, on a real Prometheus over a backfilled history (samples, never wall times)."""

from __future__ import annotations

import pytest

from bench import refresh
from tests.support import require_binary


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    require_binary("promtool")
    require_binary("prometheus")
    return {n: refresh.measure(n, 2, tmp_path_factory.mktemp(f"refresh-{n}")) for n in (2, 4)}


def test_a_count_in_the_period_reads_two_samples_per_series_whatever_the_range(measured):
    """Connections per activated account: each structure's logins counter per profile at the year's two
    ends, its activated accounts and its name (ent_structure_info) now: 2 × 6 + 1 + 1 per structure."""
    for structures, result in measured.items():
        assert result.per_panel["Most connections per activated account"] == structures * (
            2 * len(refresh.PROFILES) + 2
        )
        assert result.per_panel["Lowest activation ratio"] == structures * 2


def test_a_year_at_1000_structures_stays_under_the_target(measured):
    """What a structure adds to a refresh, times 1,000, plus what does not depend on them: under 5 million."""
    small, large = measured[2], measured[4]
    per_structure = (large.total - small.total) / 2
    assert per_structure > 0
    assert small.total - 2 * per_structure + 1000 * per_structure <= refresh.TARGET


def test_a_raw_series_read_over_a_range_is_refused():
    assert refresh.raw_ranges('sum(increase(ent_logins_total{structure!="all"}[$__range]))') == ["ent_logins_total"]
    assert refresh.raw_ranges('ent_logins_total{a="b"} - ent_logins_total{a="b"} offset $__range') == []
    assert all(not refresh.raw_ranges(t["expr"]) for p in refresh.panels() for t in p["targets"])


def test_its_section_goes_before_the_history_disk_and_is_kept(tmp_path, measured):
    """Written into BENCHMARKS.md before "A year of history", replaced (not added) when written again, and
    what bench.run keeps of it is that section alone."""
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Targets\n\nbench.run's\n\n## A year of history\n\nbench.history_disk's\n")
    body = refresh.markdown(measured[2], "python -m bench.refresh --structures 2 --apps 2")
    refresh.write_section(output, body)
    text = output.read_text()
    assert text.index("## Targets") < text.index(refresh.SECTION) < text.index("## A year of history")
    assert "bench.run's" in text and "bench.history_disk's" in text and f"**{measured[2].total:,} samples**" in text
    refresh.write_section(output, body)
    assert output.read_text() == text
    kept = refresh.kept_section(output)
    assert kept.startswith("\n" + refresh.SECTION) and "## A year of history" not in kept and "## Targets" not in kept
