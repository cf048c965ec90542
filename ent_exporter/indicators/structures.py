"""Names and kinds of the structures, for dashboards to show names instead of codes.

Every row of ``structures``, read afresh each run: a structure removed from the view stops
being published. An empty name is shown as the structure's code, a NULL kind as ``unknown``.
"""

from __future__ import annotations

from psycopg import sql

from ent_exporter.engine.collector import (
    ALL_STRUCTURES,
    Cadence,
    Collector,
    Context,
    Family,
    Kind,
    Result,
    RunRefused,
    label,
)

STRUCTURE_INFO = Family(
    "ent_structure_info",
    Kind.GAUGE,
    "Structures of the platform (always 1), with their name and kind.",
    ("structure", "name", "kind"),
    additive=False,
    title_en="Establishments",
    title_fr="Établissements",
    meaning_fr="Établissements de la plateforme (toujours 1), avec leur nom et leur type.",
)

STRUCTURES = sql.SQL("SELECT structure_id, name, kind FROM {structures}")


class StructureInfoCollector(Collector):
    name = "structure_info"
    cadence = Cadence.DAILY
    families = (STRUCTURE_INFO,)

    def collect(self, ctx: Context) -> Result:
        rows = ctx.source.fetch(STRUCTURES)
        if any(structure == ALL_STRUCTURES for structure, _name, _kind in rows):
            # Its figures would merge into the platform's (structure="all"): the run fails, loudly, every day.
            raise RunRefused(
                f"a structure is coded {ALL_STRUCTURES!r} in the source's structures, the code of the platform-wide"
                " series: its figures merge into the platform's; give it another code in the source's views"
            )
        return Result(
            {
                STRUCTURE_INFO.name: {
                    (label(structure), name if name else label(structure), label(kind)): 1.0
                    for structure, name, kind in rows
                }
            }
        )
