"""The indicator catalogue: every metric family the exporter publishes, each declared once beside its
indicator with everything its consumers need (``ent_exporter.engine.collector.Family``: name, type,
labels, the English ``help`` and the catalogue's ``unit``, ``title_en``, ``title_fr``, ``meaning_fr``).

The consumers derive their words from it instead of writing them again: the metric reference
(``ent_exporter.reference``), the dashboards' French (``ent_exporter.mixin.i18n`` adds ``french()``
to its table) and the reports' titles (``ent_exporter.reports.labels``, from the families it names).
"""

from __future__ import annotations

from ent_exporter.engine import process_metrics, runtime
from ent_exporter.engine.collector import Family
from ent_exporter.indicators import discover
from ent_exporter.probes import runner


def indicator_families() -> list[Family]:
    """The collectors' families, each once, by name."""
    found = {family.name: family for collector in discover().values() for family in collector.families}
    return [found[name] for name in sorted(found)]


def families() -> list[Family]:
    """Every family: the indicators', the exporter's own, the probes' and the process'."""
    return [*indicator_families(), *runtime.SELF_FAMILIES, *runner.FAMILIES, *process_metrics.FAMILIES]


def french() -> dict[str, str]:
    """English → French of every family's title (title_en → title_fr) and meaning (help → meaning_fr).
    Two families giving one English text two Frenches is an error: the catalogue says one thing."""
    table: dict[str, str] = {}
    for family in families():
        for english, local in ((family.title_en, family.title_fr), (family.help, family.meaning_fr)):
            if not english or not local:
                continue
            if table.setdefault(english, local) != local:
                raise ValueError(f"{english!r}: {table[english]!r} or {local!r} ({family.name})?")
    return table
