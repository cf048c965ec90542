"""Active probes of the connectors: one small class per kind (see probes.base)."""
from __future__ import annotations

from .base import REASONS, CheckResult, Probe, ProbeFailure, ProbeSettings, registered
from .cas import CASProbe
from .http import HTTPProbe
from .ldap import LDAPProbe
from .smtp import SMTPProbe
from .tcp import TCPProbe, TLSProbe

__all__ = ["REASONS", "CheckResult", "Probe", "ProbeFailure", "ProbeSettings", "registered", "kinds",
           "CASProbe", "HTTPProbe", "LDAPProbe", "SMTPProbe", "TCPProbe", "TLSProbe"]


def kinds() -> dict[str, type[Probe]]:
    """Every probe kind by name."""
    return registered()
