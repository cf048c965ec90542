"""Benchmarks: ent-exporter against a generic SQL exporter on the same database (see docs/benchmarks.md)."""
