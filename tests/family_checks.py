"""What every metric family must satisfy, whoever wrote it: the checks tests/test_example_indicator.py
runs on each discovered family, and on a new indicator added as the documentation describes; the
catalogue's part (unit, titles, French meaning) on every family the exporter publishes."""

from __future__ import annotations

import re

from ent_exporter.engine.collector import UNITS, Family, Kind

NAME = re.compile(r"ent_[a-z][a-z0-9_]*[a-z0-9]")
LABEL = re.compile(r"[a-z][a-z0-9_]*")
RESERVED_LABELS = {"le", "quantile", "job", "instance"}  # Prometheus' own, or set by the scrape
# Units in base units, as Prometheus' naming conventions ask: never milliseconds, minutes or bytes' multiples.
NOT_BASE_UNITS = ("_milliseconds", "_ms", "_minutes", "_hours", "_days", "_kilobytes", "_megabytes", "_percent")
# The unit a name's ending asks for (after _total), the first that matches: a Unix time in seconds is a
# timestamp, other seconds a duration.
UNIT_ENDINGS = (
    ("_timestamp_seconds", "timestamp"),
    ("_time_seconds", "timestamp"),
    ("_seconds", "seconds"),
    ("_ratio", "ratio"),
    ("_bytes", "bytes"),
)
# English a French text should not hold (the words the catalogue's English texts use most).
ENGLISH = re.compile(r"\b(?:the|of|and|per|with|by|or|logins?|users?|accounts?|runs?|calls?|if|else|when)\b")


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
    return found + catalogue_problems(family)


def _sentence(text: str) -> bool:
    """One sentence: a capital or a figure first, a full stop last, at most 300 characters."""
    text = text.strip()
    return bool(text) and (text[0].isupper() or text[0].isdigit()) and text.endswith(".") and len(text) <= 300


def catalogue_problems(family: Family) -> list[str]:
    """What is missing or wrong in a family's catalogue entry: its unit, titles and French meaning
    (the process families, whose names are prometheus-client's, are checked by this part only)."""
    found = []
    if family.unit not in UNITS:
        found.append(f"{family.name}: unit {family.unit!r} is not one of {UNITS}")
    base = family.name.removesuffix("_total")
    ending, expected = next(((e, unit) for e, unit in UNIT_ENDINGS if base.endswith(e)), ("", None))
    if expected is not None and family.unit != expected:
        found.append(f"{family.name}: a name ending in {ending} has unit {expected!r}")
    if expected is None and family.unit not in ("", "boolean"):
        found.append(f"{family.name}: unit {family.unit!r} but its name does not end with it")
    if not _sentence(family.meaning_fr):
        found.append(
            f"{family.name}: meaning_fr is one French sentence (a capital or a figure first, a full stop last)"
        )
    for field in ("title_en", "title_fr"):
        title = getattr(family, field).strip()
        if not title or title.endswith(".") or len(title) > 60 or not (title[0].isupper() or title[0].isdigit()):
            found.append(f"{family.name}: {field} is a few words starting with a capital, without a full stop")
        if NAME.search(title) or "_" in title:
            found.append(f"{family.name}: {field} names no metric")
    for field in ("title_fr", "meaning_fr"):
        text = getattr(family, field)
        if '"' in text:
            found.append(f'{family.name}: {field} quotes with « », not "')
        if ENGLISH.search(text):
            found.append(f"{family.name}: {field} holds English words ({ENGLISH.search(text)[0]!r})")
    return found
