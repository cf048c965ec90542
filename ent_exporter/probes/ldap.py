"""LDAP: connect (ldap:// with optional StartTLS, or ldaps://), simple bind, optional search."""

from __future__ import annotations

import math
import ssl
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ent_exporter.probes.base import (
    AUTH,
    CONTENT,
    DNS,
    ERROR,
    STATUS,
    TIMEOUT,
    TLS,
    CheckResult,
    Expiries,
    Probe,
    ProbeFailure,
    ProbeSettings,
    Secret,
    TLSSettings,
    chain_expiries,
    classify,
    from_message,
    host_port,
    parse_url,
    require_variable,
    resolve,
    tls_result,
)

PORTS = {"ldap": 389, "ldaps": 636}


class LDAPSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: str = Field(description="search base DN")
    filter: str = Field("(objectClass=*)", description="LDAP filter; at least one entry must match")
    scope: Literal["base", "one", "sub"] = Field(
        default="sub", description="the base entry only, its children, or its subtree"
    )


class LDAPSettings(ProbeSettings, TLSSettings, Secret):
    kind: Literal["ldap"] = Field(description="an LDAP directory: a bind, then a search for a known entry")
    url: str = Field(description="ldap://host[:port] or ldaps://host[:port]")
    start_tls: bool = Field(False, description="upgrade an ldap:// connection with StartTLS")
    bind_dn: str | None = Field(None, description="DN of the probe's account (anonymous bind when absent)")
    password_env: str | None = Field(None, description="environment variable holding the bind password")
    search: LDAPSearch | None = Field(default=None, description="a search that must find an entry after the bind")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return parse_url(value, ("ldap", "ldaps"), PORTS)

    @field_validator("password_env")
    @classmethod
    def _variable_set(cls, value: str | None, info: ValidationInfo) -> str | None:
        return require_variable(value, info)

    @model_validator(mode="after")
    def _credentials(self, info: ValidationInfo) -> LDAPSettings:
        if self.bind_dn and not self.password_env:
            raise ValueError("bind_dn needs password_env (the environment variable holding its password)")
        if self.start_tls and self.url.startswith("ldaps:"):
            raise ValueError("start_tls is for ldap:// URLs (ldaps:// is TLS from the start)")
        self.read_secret(self.password_env, info)
        return self


class LDAPProbe(Probe):
    kind = "ldap"
    Settings = LDAPSettings
    settings: LDAPSettings

    def prepare(self) -> None:
        import ldap3  # noqa: F401

        super().prepare()

    def check(self) -> CheckResult:
        import ldap3
        from ldap3.core import exceptions as lx

        s = self.settings
        host, port = host_port(s.url, PORTS)
        secure = s.url.startswith("ldaps:")
        tls = None
        if secure or s.start_tls:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if s.verify_tls else ssl.CERT_NONE, ca_certs_file=s.ca_file)
        server = ldap3.Server(
            host, port=port, use_ssl=secure, tls=tls, connect_timeout=self.timeout, get_info=ldap3.NONE
        )
        connection = ldap3.Connection(
            server,
            user=s.bind_dn,
            password=s.password,
            receive_timeout=math.ceil(self.timeout),  # ldap3 takes whole seconds
            auto_bind=ldap3.AUTO_BIND_NONE,
            raise_exceptions=False,
            read_only=True,
            auto_referrals=False,
        )
        expiries = Expiries()
        try:
            # ldap3 turns a name that does not resolve into "invalid server address", like any other
            # address problem: resolve first, so that it is reason dns as for every other kind.
            resolve(host, port, self.phase)
            self.phase.restart()
            connection.open()
            self.phase.lap("connect")  # ldaps://: the TLS handshake included (ldap3 does both in one call)
            if s.start_tls and not connection.start_tls():
                raise ProbeFailure(TLS, f"StartTLS refused: {connection.result}")
            if s.start_tls:
                self.phase.lap("tls")
            if secure or s.start_tls:
                expiries = chain_expiries(connection.socket)
            if not connection.bind():
                result = connection.result or {}
                code = result.get("result")
                reason = AUTH if code in (48, 49, 50) else STATUS  # inappropriateAuth, invalidCredentials, rights
                raise ProbeFailure(
                    reason,
                    f"bind as {s.bind_dn or '(anonymous)'} refused: "
                    f"{result.get('description')} {result.get('message') or ''}".strip(),
                )
            if s.search is not None:
                scope = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}[s.search.scope]
                found = connection.search(
                    s.search.base,
                    s.search.filter,
                    search_scope=scope,
                    attributes=[],
                    size_limit=1,
                    time_limit=max(1, int(self.timeout)),
                )
                result = connection.result or {}
                if not found and result.get("result") not in (0, 4):  # success, sizeLimitExceeded
                    raise ProbeFailure(STATUS, f"search under {s.search.base} failed: {result.get('description')}")
                if not connection.entries and not connection.response:
                    raise ProbeFailure(CONTENT, f"search {s.search.filter} under {s.search.base} found no entry")
            self.phase.lap("request")  # the bind and the search
        except ProbeFailure:
            raise
        except lx.LDAPResponseTimeoutError as error:
            raise ProbeFailure(TIMEOUT, f"no answer within {self.timeout:g} s ({error})") from None
        except lx.LDAPSocketReceiveError as error:
            if "timed out" in str(error) or "timeout" in str(error).lower():
                raise ProbeFailure(TIMEOUT, f"no answer within {self.timeout:g} s ({error})") from None
            raise classify(error) from None
        except lx.LDAPSocketOpenError as error:
            if "invalid server address" in str(error):
                raise ProbeFailure(DNS, f"{host} does not resolve ({error})") from None
            raise from_message(error) from None
        except lx.LDAPException as error:
            raise ProbeFailure(ERROR, f"{type(error).__name__}: {error}") from None
        except OSError as error:
            raise classify(error) from None
        finally:
            try:
                connection.unbind()
            except Exception:
                pass
        return tls_result(expiries)
