"""The probe contract: what a probe kind declares and how it reports a failure.

A probe kind is a small class: its ``kind`` name, a pydantic ``Settings`` model (the keys of
one entry of ``probes:`` in the configuration, beside the common ones), and one
``check()`` method that talks to the target once and either returns (success) or raises
``ProbeFailure`` with one reason of the fixed set ``REASONS``. The runtime
(``ent_exporter/probes/runner.py``) runs it on its interval with a hard time bound, counts the outcomes
and publishes the metrics; a probe kind never schedules, counts or logs.

Defining a concrete subclass registers it by its ``kind``.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

# Why a probe failed: a fixed set, so that the reason label stays bounded.
TIMEOUT = "timeout"  # no answer within timeout_seconds (host down behind a firewall, server hung)
REFUSED = "refused"  # connection refused or reset: nothing listens on the port, service stopped
DNS = "dns"  # the host name does not resolve
TLS = "tls"  # TLS handshake failed: certificate expired, untrusted, wrong name, protocol mismatch
AUTH = "auth"  # the server answered but refused the probe's credentials
STATUS = "status"  # the server answered with an unexpected status (HTTP code, SMTP reply, CAS failure)
CONTENT = "content"  # the answer came but not with the expected content (body, search result, ticket)
TOO_LARGE = "too_large"  # the answer went past max_response_bytes: reading stopped there
ERROR = "error"  # anything else (protocol error, unexpected exception): see the log
REASONS: tuple[str, ...] = (TIMEOUT, REFUSED, DNS, TLS, AUTH, STATUS, CONTENT, TOO_LARGE, ERROR)

# What a probe reads of one answer at most, by default (blackbox_exporter has no default; 1 MiB is far
# above any login page or CAS answer, and far below what could hurt the exporter).
MAX_RESPONSE_BYTES = 1 << 20


@dataclass
class CheckResult:
    """What a check learnt beside "it works": if TLS was used, when the presented chain expires (its
    earliest notAfter, like blackbox_exporter's probe_ssl_earliest_cert_expiry), when the leaf, the
    server's own certificate, does, and the TLS version agreed; over HTTP, the answer's status code."""

    certificate_expiry: float | None = None  # Unix time of the earliest notAfter of the presented chain
    leaf_expiry: float | None = None  # Unix time of the leaf certificate's notAfter
    tls_version: str | None = None  # "TLS 1.3", blackbox_exporter's spelling (Go's tls.VersionName)
    http_status: int | None = None  # the status code of the answer the check judged


class ProbeFailure(Exception):
    """A failed check: ``reason`` is one of REASONS (the label), ``detail`` goes to the log; ``learnt``,
    what the check saw before it failed (an HTTP status, a TLS version)."""

    def __init__(self, reason: str, detail: str, learnt: CheckResult | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown probe failure reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.learnt = learnt


@dataclass(frozen=True)
class Expiries:
    """The expiries of a presented chain: the earliest of all its certificates, and the leaf's; and the
    TLS version of the connection that presented it."""

    earliest: float | None = None
    leaf: float | None = None
    version: str | None = None


def tls_version_name(ssl_object: Any) -> str | None:
    """The connection's TLS version as blackbox_exporter's probe_tls_version_info spells it ("TLS 1.3")."""
    version = ssl_object.version() if ssl_object is not None else None
    if not version:
        return None
    if version.startswith("TLSv"):
        number = version.removeprefix("TLSv")
        return f"TLS {number if '.' in number else number + '.0'}"
    return version  # (SSLv3, which Go spells the same)


def presented_chain(ssl_object: Any) -> list[bytes]:
    """The certificates the peer presented (DER, leaf first), verified or not, of an SSLSocket or an
    SSLObject. Python 3.13 has get_unverified_chain() (DER); before, the private _sslobj has it (certificate
    objects)."""
    for owner in (ssl_object, getattr(ssl_object, "_sslobj", None)):
        method = getattr(owner, "get_unverified_chain", None)
        if method is not None:
            return [_der(certificate) for certificate in method() or []]
    leaf = ssl_object.getpeercert(True)
    return [leaf] if leaf else []


def _der(certificate: Any) -> bytes:
    if isinstance(certificate, bytes | bytearray):
        return bytes(certificate)
    return certificate.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]


def chain_expiries(ssl_object: Any) -> Expiries:
    """When the chain ``ssl_object``'s peer presented expires: its earliest notAfter, and the leaf's."""
    if ssl_object is None:
        return Expiries()
    chain = presented_chain(ssl_object)
    version = tls_version_name(ssl_object)
    if not chain:
        return Expiries(version=version)
    expiries = [certificate_expiry(der) for der in chain]
    known = [when for when in expiries if when is not None]
    return Expiries(min(known) if known else None, expiries[0], version)


def tls_result(expiries: Expiries, http_status: int | None = None) -> CheckResult:
    return CheckResult(expiries.earliest, expiries.leaf, expiries.version, http_status)


def classify(error: BaseException) -> ProbeFailure:
    """A ProbeFailure for an exception from the network stack (looks through wrapped causes)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ProbeFailure):
            return current
        if isinstance(current, (socket.timeout, TimeoutError)):
            return ProbeFailure(TIMEOUT, str(error) or "timed out")
        if isinstance(current, socket.gaierror):
            return ProbeFailure(DNS, str(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return ProbeFailure(TLS, str(current))
        if isinstance(current, (ConnectionRefusedError, ConnectionResetError)):
            return ProbeFailure(REFUSED, str(current))
        if isinstance(current, OSError) and current.errno in (errno.ECONNREFUSED, errno.ECONNRESET):
            return ProbeFailure(REFUSED, str(current))
        if isinstance(current, OSError) and current.errno in (errno.ETIMEDOUT,):
            return ProbeFailure(TIMEOUT, str(current))
        current = current.__cause__ or current.__context__
    return from_message(error)


def from_message(error: BaseException) -> ProbeFailure:
    """For libraries that wrap the socket error into their own exception and keep only its text."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, (TypeError, AttributeError, KeyError, IndexError, NameError)):
        return ProbeFailure(ERROR, text)  # a bug, not the network: its text says nothing about the target
    lowered = text.lower()
    if "refused" in lowered or "reset by peer" in lowered:
        return ProbeFailure(REFUSED, text)
    if "timed out" in lowered or "timeout" in lowered:
        return ProbeFailure(TIMEOUT, text)
    if any(
        words in lowered
        for words in (
            "name or service not known",
            "getaddrinfo",
            "nodename nor servname",
            "temporary failure in name resolution",
            "no address associated",
        )
    ):
        return ProbeFailure(DNS, text)
    if any(words in lowered for words in ("ssl", "certificate", "tls")):
        return ProbeFailure(TLS, text)
    return ProbeFailure(ERROR, text)


def certificate_expiry(der: bytes | None) -> float | None:
    """The notAfter of a DER certificate as Unix time (to the second), None without a certificate."""
    if not der:
        return None
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """Verification on by default, against the system's CAs or the given CA file. Made once and kept
    (loading the system's CAs takes tens of milliseconds, which each probe would count): a new one when
    the CA file changes."""
    try:
        stamp = os.stat(ca_file).st_mtime_ns if ca_file is not None else None
    except OSError:
        stamp = None
    return _tls_context(verify, ca_file, stamp)


@functools.lru_cache(maxsize=64)
def _tls_context(verify: bool, ca_file: str | None, stamp: int | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def parse_url(value: str, schemes: tuple[str, ...], default_ports: dict[str, int]) -> str:
    """Validates a probe's target URL: one of ``schemes``, a host, a valid port."""
    parts = urlsplit(value)
    allowed = " or ".join(f"{scheme}://" for scheme in schemes)
    if parts.scheme not in schemes:
        raise ValueError(f"not an {allowed} URL: {value!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {value!r}") from None
    if not parts.hostname:
        raise ValueError(f"no host in {value!r}")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"bad port in {value!r}")
    return value


def host_port(url: str, default_ports: dict[str, int]) -> tuple[str, int]:
    parts: SplitResult = urlsplit(url)
    return parts.hostname or "", parts.port or default_ports[parts.scheme]


class ProbeSettings(BaseModel):
    """The keys every probe has; each kind's Settings adds its own (target, credentials...)."""

    model_config = ConfigDict(extra="forbid")

    connector: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="the connector label value (ldap, cas, pronote, smtp...)",
    )
    kind: str
    timeout_seconds: float = Field(5.0, gt=0, le=300, description="hard bound of one probe")
    interval_seconds: float = Field(30.0, ge=1, le=86_400, description="time between two probes (start to start)")

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> ProbeSettings:
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError(
                f"timeout_seconds ({self.timeout_seconds:g}) must not exceed interval_seconds "
                f"({self.interval_seconds:g})"
            )
        return self


class LimitSettings(BaseModel):
    """The size bound of the kinds that read an answer's body."""

    max_response_bytes: int = Field(
        MAX_RESPONSE_BYTES,
        ge=1024,
        le=1 << 30,
        description="what the probe reads of one answer at most; past it, reading stops and the probe fails"
        " with reason too_large",
    )


class TLSSettings(BaseModel):
    """TLS options shared by the kinds that may use it."""

    verify_tls: bool = Field(True, description="verify the server's certificate and name")
    ca_file: str | None = Field(None, description="PEM file of the CAs to trust instead of the system's")

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                with open(value, "rb"):
                    pass
            except OSError as error:
                raise ValueError(f"cannot read {value!r} ({error.strerror})") from None
        return value


def _environ(info: ValidationInfo | None):
    import os

    environ = (info.context or {}).get("environ") if info is not None and info.context else None
    return os.environ if environ is None else environ


def require_variable(variable: str | None, info: ValidationInfo | None) -> str | None:
    """A ``password_env`` key: the variable must be set when the configuration is loaded."""
    if variable is not None and variable not in _environ(info):
        raise ValueError(f"environment variable {variable} is not set (it must hold the probe's password)")
    return variable


class Secret(BaseModel):
    """A password read from an environment variable named in the configuration (never in the file)."""

    _password: str | None = PrivateAttr(None)

    def read_secret(self, variable: str | None, info: ValidationInfo | None) -> None:
        if variable is not None:
            self._password = _environ(info).get(variable)

    @property
    def password(self) -> str | None:
        return self._password


# The phases of a probe (the ``phase`` label), blackbox_exporter's names where it has them: the name
# lookup, the TCP connection, the TLS handshake, the exchange with the server (HTTP request and
# answer, LDAP bind and search, SMTP greeting and EHLO), and "processing", the exporter's own time:
# the probe's whole duration less the other phases (blackbox's "processing" is the server's time
# to the first byte, part of our "request").
PHASES: tuple[str, ...] = ("resolve", "connect", "tls", "request", "processing")


class Phases:
    """The time each phase of one attempt took (time.monotonic), measured by ``with phases("connect"):``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def restart(self) -> None:
        """Starts the stopwatch that ``lap`` reads."""
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        """The time since the last lap (or restart) goes to phase ``name``."""
        now = time.monotonic()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started


def resolve(host: str, port: int, phases: Phases) -> list[tuple[Any, ...]]:
    """The addresses of ``host`` (the resolve phase); a name that does not resolve is reason dns."""
    with phases("resolve"):
        try:
            return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise classify(error) from None


def connect(host: str, port: int, timeout: float, phases: Phases) -> socket.socket:
    """A TCP connection to the first of ``host``'s addresses that accepts (resolve, then connect)."""
    addresses = resolve(host, port, phases)
    last: OSError | None = None
    with phases("connect"):
        for family, kind, protocol, _, address in addresses:
            sock = socket.socket(family, kind, protocol)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
                return sock
            except OSError as error:
                sock.close()
                last = error
    raise classify(last or OSError(f"no address for {host}"))


_REGISTRY: dict[str, type[Probe]] = {}


class Probe:
    """Base of every probe kind. Subclasses set ``kind`` and ``Settings`` and implement ``check``."""

    kind: ClassVar[str]
    Settings: ClassVar[type[ProbeSettings]]
    # Whether its last answer's HTTP status is published (ent_connector_probe_http_status_code; 0 when
    # no answer came, as blackbox_exporter's probe_http_status_code).
    reports_status: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        for attribute in ("kind", "Settings"):
            if attribute not in cls.__dict__:
                raise TypeError(f"probe {cls.__qualname__} must declare {attribute}")
        field = cls.Settings.model_fields["kind"]
        if field.annotation != Literal[cls.kind]:  # the discriminator of the configuration's union
            raise TypeError(f"{cls.__qualname__}.Settings.kind must be Literal[{cls.kind!r}]")
        previous = _REGISTRY.get(cls.kind)
        if previous is not None and previous.__qualname__ != cls.__qualname__:
            raise TypeError(f"two probe kinds named {cls.kind}")
        _REGISTRY[cls.kind] = cls

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.phase = Phases()  # a fresh one for each attempt (the runner's)

    @property
    def timeout(self) -> float:
        return self.settings.timeout_seconds

    def prepare(self) -> None:
        """Once, before the first attempt: what would otherwise count in the first probe's duration
        (importing a client library, loading the CAs)."""
        if isinstance(self.settings, TLSSettings):
            tls_context(self.settings.verify_tls, self.settings.ca_file)

    def check(self) -> CheckResult:
        """Talks to the target once; returns on success, raises ProbeFailure otherwise."""
        raise NotImplementedError


def registered() -> dict[str, type[Probe]]:
    return dict(_REGISTRY)
