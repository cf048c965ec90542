"""CAS: the login page answers with its form; with a test account, the REST ticket flow
(``/v1/tickets``) and ``serviceValidate`` succeed (CAS protocol 2.0/3.0)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ent_exporter.probes.base import (
    AUTH,
    CONTENT,
    STATUS,
    CheckResult,
    LimitSettings,
    Probe,
    ProbeFailure,
    ProbeSettings,
    Secret,
    TLSSettings,
    parse_url,
    require_variable,
    tls_result,
)
from ent_exporter.probes.http import PORTS, request

FORM = re.compile(r"<form\b", re.I)
SUCCESS = re.compile(r"<cas:authenticationSuccess>.*?<cas:user>\s*([^<]*?)\s*</cas:user>", re.S)
FAILURE = re.compile(r"<cas:authenticationFailure\s+code=\"([^\"]*)\"", re.S)


class CASSettings(ProbeSettings, TLSSettings, LimitSettings, Secret):
    kind: Literal["cas"] = Field(description="a CAS server: its login form, and the ticket flow with a test account")
    url: str = Field(description="the CAS server's base URL (the one /login is under), https://")
    service: str | None = Field(None, description="service URL the test ticket is issued for")
    username: str | None = Field(None, description="test account for the REST ticket flow (optional)")
    password_env: str | None = Field(None, description="environment variable holding the test account's password")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return parse_url(value, ("http", "https"), PORTS).rstrip("/")

    @field_validator("service")
    @classmethod
    def _service(cls, value: str | None) -> str | None:
        return None if value is None else parse_url(value, ("http", "https"), PORTS)

    @field_validator("password_env")
    @classmethod
    def _variable_set(cls, value: str | None, info: ValidationInfo) -> str | None:
        return require_variable(value, info)

    @model_validator(mode="after")
    def _account(self, info: ValidationInfo) -> CASSettings:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together (the REST ticket flow needs both)")
        if self.username is not None and self.service is None:
            raise ValueError("the REST ticket flow needs service (the URL the ticket is validated for)")
        self.read_secret(self.password_env, info)
        return self


class CASProbe(Probe):
    kind = "cas"
    Settings = CASSettings
    settings: CASSettings

    def prepare(self) -> None:
        import httpx  # noqa: F401

        super().prepare()

    def check(self) -> CheckResult:
        s = self.settings
        login = request(f"{s.url}/login", s, self.timeout, limit=s.max_response_bytes, phases=self.phase)
        if login.status_code != 200:
            raise ProbeFailure(STATUS, f"GET {s.url}/login answered {login.status_code}, expected 200")
        if not FORM.search(login.text):
            raise ProbeFailure(CONTENT, f"{s.url}/login has no login form")
        if s.username is not None:
            self._ticket_flow()
        return tls_result(login.expiries)

    def _ticket_flow(self) -> None:
        s = self.settings
        tickets = f"{s.url}/v1/tickets"
        limit = s.max_response_bytes
        granting = request(
            tickets,
            s,
            self.timeout,
            method="POST",
            data={"username": s.username, "password": s.password or ""},
            limit=limit,
            phases=self.phase,
        )
        if granting.status_code in (400, 401, 403):
            raise ProbeFailure(AUTH, f"POST {tickets} refused the test account {s.username} ({granting.status_code})")
        location = granting.headers.get("location", "")
        if granting.status_code != 201 or not location:
            raise ProbeFailure(STATUS, f"POST {tickets} answered {granting.status_code}, expected 201 with a Location")
        if urlsplit(location).hostname != urlsplit(s.url).hostname:
            raise ProbeFailure(
                STATUS, f"the ticket-granting ticket is at {location}, a host the configuration does not name"
            )
        try:
            service = request(
                location, s, self.timeout, method="POST", data={"service": s.service}, limit=limit, phases=self.phase
            )
            ticket = service.text.strip()
            if service.status_code != 200 or not ticket.startswith("ST-"):
                raise ProbeFailure(STATUS, f"POST {tickets}/… answered {service.status_code} without a service ticket")
            validation = request(
                f"{s.url}/serviceValidate",
                s,
                self.timeout,
                params={"service": s.service, "ticket": ticket},
                limit=limit,
                phases=self.phase,
            )
            if validation.status_code != 200:
                raise ProbeFailure(STATUS, f"GET {s.url}/serviceValidate answered {validation.status_code}")
            user = SUCCESS.search(validation.text)
            if user is None:
                failure = FAILURE.search(validation.text)
                raise ProbeFailure(
                    CONTENT,
                    "serviceValidate did not validate the ticket" + (f" ({failure.group(1)})" if failure else ""),
                )
            if user.group(1) != s.username:
                raise ProbeFailure(CONTENT, f"serviceValidate names {user.group(1)!r}, not the test account")
        finally:
            try:  # log the test account out: no ticket-granting ticket left behind
                request(location, s, self.timeout, method="DELETE", limit=limit, phases=self.phase)
            except ProbeFailure:
                pass
