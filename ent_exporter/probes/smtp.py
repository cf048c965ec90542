"""SMTP: the mail relay greets and answers EHLO (optionally upgraded with STARTTLS, or smtps://)."""

from __future__ import annotations

import smtplib
import ssl
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ent_exporter.probes.base import (
    ERROR,
    STATUS,
    TLS,
    CheckResult,
    Expiries,
    Probe,
    ProbeFailure,
    ProbeSettings,
    TLSSettings,
    chain_expiries,
    classify,
    host_port,
    parse_url,
    resolve,
    tls_context,
    tls_result,
)

PORTS = {"smtp": 25, "smtps": 465}


class SMTPSettings(ProbeSettings, TLSSettings):
    kind: Literal["smtp"] = Field(description="a mail relay: its greeting and its answer to EHLO")
    url: str = Field(description="smtp://host[:port] or smtps://host[:port] (TLS from the start)")
    starttls: bool = Field(False, description="upgrade with STARTTLS after EHLO (smtp:// only)")
    ehlo_name: str = Field("ent-exporter.probe", description="the name the probe gives in EHLO")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return parse_url(value, ("smtp", "smtps"), PORTS)

    @model_validator(mode="after")
    def _starttls_plain_only(self) -> SMTPSettings:
        if self.starttls and self.url.startswith("smtps:"):
            raise ValueError("starttls is for smtp:// URLs (smtps:// is TLS from the start)")
        return self


class SMTPProbe(Probe):
    kind = "smtp"
    Settings = SMTPSettings
    settings: SMTPSettings

    def check(self) -> CheckResult:
        s = self.settings
        host, port = host_port(s.url, PORTS)
        context = tls_context(s.verify_tls, s.ca_file)
        expiries = Expiries()
        try:
            resolve(host, port, self.phase)  # a name that does not resolve is dns before smtplib tries
            self.phase.restart()
            if s.url.startswith("smtps:"):
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    host, port, local_hostname=s.ehlo_name, timeout=self.timeout, context=context
                )
            else:
                client = smtplib.SMTP(host, port, local_hostname=s.ehlo_name, timeout=self.timeout)
            self.phase.lap("connect")  # and the greeting (smtps://: the TLS handshake too)
            try:
                code, message = client.ehlo()
                if code != 250:
                    raise ProbeFailure(STATUS, f"EHLO answered {code} {message.decode(errors='replace')}")
                if s.starttls:
                    if not client.has_extn("starttls"):
                        raise ProbeFailure(TLS, f"{host}:{port} does not offer STARTTLS")
                    self.phase.lap("request")
                    client.starttls(context=context)
                    self.phase.lap("tls")
                    code, message = client.ehlo()
                    if code != 250:
                        raise ProbeFailure(STATUS, f"EHLO after STARTTLS answered {code}")
                self.phase.lap("request")  # EHLO (both, with STARTTLS)
                if isinstance(client.sock, ssl.SSLSocket):
                    expiries = chain_expiries(client.sock)
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    pass
            finally:
                client.close()
        except ProbeFailure:
            raise
        except smtplib.SMTPConnectError as error:
            raise ProbeFailure(STATUS, f"the greeting was {error.smtp_code} {error.smtp_error!r}") from None
        except smtplib.SMTPServerDisconnected as error:
            # smtplib turns a read that timed out into a disconnection: its cause says which it was.
            failure = classify(error)
            if failure.reason == ERROR:
                failure = ProbeFailure(ERROR, f"the server closed the connection: {error}")
            raise failure from None
        except smtplib.SMTPResponseException as error:
            raise ProbeFailure(STATUS, f"{error.smtp_code} {error.smtp_error!r}") from None
        except (TimeoutError, OSError) as error:
            raise classify(error) from None
        return tls_result(expiries)
