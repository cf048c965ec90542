"""What every metric family must satisfy, whoever wrote it: the checks tests/test_example_indicator.py
runs on each discovered family, and on a new indicator added as the documentation describes."""

from __future__ import annotations

import re

from ent_exporter.engine.collector import Family, Kind

NAME = re.compile(r"ent_[a-z][a-z0-9_]*[a-z0-9]")
LABEL = re.compile(r"[a-z][a-z0-9_]*")
RESERVED_LABELS = {"le", "quantile", "job", "instance"}  # Prometheus' own, or set by the scrape
# Units in base units, as Prometheus' naming conventions ask: never milliseconds, minutes or bytes' multiples.
NOT_BASE_UNITS = ("_milliseconds", "_ms", "_minutes", "_hours", "_days", "_kilobytes", "_megabytes", "_percent")


def problems(family: Family) -> list[str]:
    """What is wrong with a family's declaration ([] when nothing)."""
    found = []
    if not NAME.fullmatch(family.name) or "__" in family.name:
        found.append(f"{family.name}: a name is ent_ then lower-case words joined by single underscores")
    if family.kind is Kind.COUNTER and not family.name.endswith("_total"):
        found.append(f"{family.name}: a counter's name ends in _total")
    if family.kind is not Kind.COUNTER and family.name.endswith("_total"):
        found.append(f"{family.name}: only counters end in _total")
    if family.name.endswith(("_bucket", "_count", "_sum", "_created", "_info_total")):
        found.append(f"{family.name}: ends with a suffix the exposition format gives a meaning")
    if family.name.endswith(NOT_BASE_UNITS) or any(f"{unit}_" in family.name for unit in NOT_BASE_UNITS):
        found.append(f"{family.name}: units are base units (_seconds, _bytes, _ratio)")
    help_text = family.help.strip()
    if not help_text or not (help_text[0].isupper() or help_text[0].isdigit()) or not help_text.endswith("."):
        found.append(f"{family.name}: its help is a sentence (a capital or a figure first, a full stop last)")
    if len(help_text) > 300:
        found.append(f"{family.name}: its help is one sentence, not {len(help_text)} characters")
    if len(set(family.labels)) != len(family.labels):
        found.append(f"{family.name}: a label appears twice")
    for name in family.labels:
        if not LABEL.fullmatch(name) or name in RESERVED_LABELS or name.startswith("__"):
            found.append(f"{family.name}: label {name!r} is not a plain snake_case name of its own")
    if family.structure_marginals and "structure" not in family.labels:
        found.append(f"{family.name}: structure marginals need a structure label")
    return found
