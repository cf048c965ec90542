"""Active probes of the connectors: one small class per kind (see ent_exporter.probes.base)."""

from __future__ import annotations

from ent_exporter.probes.base import REASONS, CheckResult, Probe, ProbeFailure, ProbeSettings, registered
from ent_exporter.probes.cas import CASProbe
from ent_exporter.probes.http import HTTPProbe
from ent_exporter.probes.ldap import LDAPProbe
from ent_exporter.probes.smtp import SMTPProbe
from ent_exporter.probes.tcp import TCPProbe, TLSProbe

__all__ = [
    "REASONS",
    "CheckResult",
    "Probe",
    "ProbeFailure",
    "ProbeSettings",
    "registered",
    "kinds",
    "CASProbe",
    "HTTPProbe",
    "LDAPProbe",
    "SMTPProbe",
    "TCPProbe",
    "TLSProbe",
]


def kinds() -> dict[str, type[Probe]]:
    """Every probe kind by name."""
    return registered()
