"""TCP and TLS: connect to host:port; ``tls`` also completes a TLS handshake and reports the
peer certificate's expiry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ent_exporter.probes.base import (
    CheckResult,
    Probe,
    ProbeSettings,
    TLSSettings,
    chain_expiries,
    classify,
    connect,
    tls_context,
    tls_result,
)


def parse_address(value: str) -> str:
    host, separator, port = value.rpartition(":")
    host = host.strip("[]")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {value!r}")
    return value


def split_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class TCPSettings(ProbeSettings):
    kind: Literal["tcp"] = Field(description="a TCP connection only")
    address: str = Field(description="host:port")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return parse_address(value)


class TLSProbeSettings(ProbeSettings, TLSSettings):
    kind: Literal["tls"] = Field(description="a TLS handshake, and the certificate's expiry")
    address: str = Field(description="host:port")
    server_name: str | None = Field(None, description="name to send (SNI) and verify; the host by default")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return parse_address(value)


class TCPProbe(Probe):
    kind = "tcp"
    Settings = TCPSettings
    settings: TCPSettings

    def check(self) -> CheckResult:
        host, port = split_address(self.settings.address)
        connect(host, port, self.timeout, self.phase).close()
        return CheckResult()


class TLSProbe(Probe):
    kind = "tls"
    Settings = TLSProbeSettings
    settings: TLSProbeSettings

    def check(self) -> CheckResult:
        s = self.settings
        host, port = split_address(s.address)
        context = tls_context(s.verify_tls, s.ca_file)
        try:
            with connect(host, port, self.timeout, self.phase) as raw:
                with self.phase("tls"):
                    secure = context.wrap_socket(raw, server_hostname=s.server_name or host)
                with secure:
                    return tls_result(chain_expiries(secure))
        except OSError as error:  # ssl.SSLError is an OSError
            raise classify(error) from None
