"""bench/probes.py at a tiny scale, so that it cannot rot: a real slapd, binds alone and through the
exporter's ProbeRunner. Asserts counts and that the durations it reports are the ones the exporter
publishes, never a wall time."""

from __future__ import annotations

from bench import probes as bench


def test_the_probe_benchmark_runs_and_reports_what_the_exporter_publishes(tmp_path):
    result = bench.run(probes=3, seconds=2.5, interval=1.0, alone=20, workdir=tmp_path)
    assert len(result.alone_ms) == 20 and all(spent > 0 for spent in result.alone_ms)
    assert result.failures == 0 and result.exporter_ms
    # Each duration the benchmark reads is one the exporter put into ent_connector_probe_duration_seconds.
    assert result.published_count == len(result.exporter_ms)
    assert abs(result.published_sum_ms - sum(result.exporter_ms)) < 1e-6 * max(1.0, result.published_sum_ms)
    # Every successful probe has its phases, and they add up to its duration.
    for phase in ("resolve", "connect", "request", "processing"):
        assert len(result.phases_ms[phase]) == len(result.exporter_ms), phase
    total = sum(sum(values) for values in result.phases_ms.values())
    assert abs(total - sum(result.exporter_ms)) < 1e-6 * max(1.0, total)

    # Its section of BENCHMARKS.md: before the history disk's, replaced in place by the next run, kept
    # by bench.run's rewrite.
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Every report of a month (x)\n\nreports\n\n## A year of history\n\ndisk\n")
    body = bench.markdown(result, "python -m bench.probes --output BENCHMARKS.md")
    assert body.startswith(bench.SECTION) and "python -m bench.probes --output BENCHMARKS.md" in body
    bench.write_section(output, body)
    bench.write_section(output, body.replace("ldap3 alone", "ldap3 on its own"))
    text = output.read_text()
    assert text.count(bench.SECTION) == 1 and "ldap3 on its own" in text
    assert text.index("## Every report") < text.index(bench.SECTION) < text.index("## A year of history")
    assert bench.kept_section(output).strip() == body.replace("ldap3 alone", "ldap3 on its own").strip()
