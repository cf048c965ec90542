"""ENT indicators, one module per indicator family.

Every concrete ``Collector`` subclass defined in a module of this package is found by
``discover()``: adding an indicator is adding a class, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

from ent_exporter.engine.collector import Cadence, Collector, Context, Family, HistogramValue, Kind, Result, registered

__all__ = ["Cadence", "Collector", "Context", "Family", "HistogramValue", "Kind", "Result", "discover"]


def discover() -> dict[str, type[Collector]]:
    """Imports every module of this package and returns the registered collectors by name."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return registered()
