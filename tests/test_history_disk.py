"""bench/history_disk.py backfills real blocks with promtool and measures them; its BENCHMARKS.md section
survives bench.run rewriting the rest of the file."""

from __future__ import annotations

import re

from bench.history_disk import SECTION, kept_section, main, write_section
from tests.support import require_binary

EXPOSITION = """# HELP ent_logins_total Successful logins.
# TYPE ent_logins_total counter
ent_logins_total{structure="S1",profile="Teacher"} 1200.0
ent_logins_total{structure="S2",profile="Teacher"} 300.0
ent_logins_total{structure="all",profile="Teacher"} 1500.0
# HELP ent_unique_visitors Visitors.
# TYPE ent_unique_visitors gauge
ent_unique_visitors{structure="S1",profile="Teacher",period="day"} 12.0
ent_unique_visitors{structure="S2",profile="Teacher",period="day"} 3.0
ent_unique_visitors{structure="all",profile="Teacher",period="day"} 15.0
# HELP ent_account_activation_ratio Ratio.
# TYPE ent_account_activation_ratio gauge
ent_account_activation_ratio{structure="S1",profile="Teacher"} 0.75
ent_account_activation_ratio{structure="S2",profile="Teacher"} 0.5
# HELP ent_exporter_collector_duration_seconds Duration.
# TYPE ent_exporter_collector_duration_seconds gauge
ent_exporter_collector_duration_seconds{collector="logins"} 0.01
"""


def test_measures_backfilled_blocks_and_extrapolates(tmp_path, capsys):
    require_binary("promtool")
    exposition = tmp_path / "exposition.txt"
    exposition.write_text(EXPOSITION)
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\nbench.run's part\n")
    assert (
        main(
            [
                "--exposition",
                str(exposition),
                "--structures",
                "1",
                "--hours",
                "3",
                "--target-structures",
                "10",
                "--days",
                "10",
                "--output",
                str(output),
                "--keep",
                str(tmp_path / "w"),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    # 1 structure (3 series) + 3 others (the "all" ones and a self-metric): 6 series, 3 h at 30 s.
    assert "= 6 series, 3 h at 30 s (2,160 samples" in table
    bytes_per_sample = float(re.search(r"chunk bytes per sample \| ([\d.]+)", table).group(1))
    assert 0.05 < bytes_per_sample < 4
    # Blocks were really written by promtool.
    assert any((tmp_path / "w" / "blocks").glob("*/meta.json"))
    # 10 structures at 3 series each + 3 others = 33 series.
    assert "| series at 10 structures | 33 exported" in table
    text = output.read_text()
    assert text.startswith("# Benchmarks\n\nbench.run's part\n\n" + SECTION)
    # bench.run keeps the section when it rewrites the file; a second run replaces it.
    assert kept_section(output).strip() == text[text.index(SECTION) :].strip()
    write_section(output, SECTION + "\n\nnew\n")
    assert output.read_text() == "# Benchmarks\n\nbench.run's part\n\n" + SECTION + "\n\nnew\n"
