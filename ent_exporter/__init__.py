"""ent-exporter runtime: configuration, source pool, scheduling, state and exposition.

It knows nothing about ENT indicators: those live in the ``collectors`` package.
"""

__version__ = "0.1.0"
