"""HTTP(S): GET or HEAD a URL (an SSO or service page: Pronote, the GAR, EduConnect, the ENT's home page),
expected status codes, optional body regular expression, redirects followed or not."""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ent_exporter.probes.base import (
    CONTENT,
    MAX_RESPONSE_BYTES,
    STATUS,
    TIMEOUT,
    TOO_LARGE,
    CheckResult,
    Expiries,
    LimitSettings,
    Phases,
    Probe,
    ProbeFailure,
    ProbeSettings,
    TLSSettings,
    chain_expiries,
    classify,
    parse_url,
    resolve,
    tls_context,
    tls_result,
)

if TYPE_CHECKING:
    import httpx

PORTS = {"http": 80, "https": 443}


class HTTPSettings(ProbeSettings, TLSSettings, LimitSettings):
    kind: Literal["http"] = Field(description="an HTTP request: expected statuses, body check")
    url: str = Field(description="http:// or https:// URL")
    method: Literal["GET", "HEAD"] = Field(default="GET", description="the request's method")
    expect_status: list[int] = Field(
        default_factory=lambda: [200], min_length=1, description="status codes that mean up"
    )
    body_regex: str | None = Field(None, description="a regular expression the body must match (GET only)")
    follow_redirects: bool = Field(
        default=False, description="follow redirects, only to the URL's host and redirect_hosts"
    )
    redirect_hosts: list[str] = Field(
        default_factory=list, description="hosts a redirect may lead to besides the URL's own"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return parse_url(value, ("http", "https"), PORTS)

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        wrong = [code for code in value if not 100 <= code <= 599]
        if wrong:
            raise ValueError(f"not HTTP status codes: {wrong}")
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression ({error})") from None
        return value

    @model_validator(mode="after")
    def _body_needs_get(self) -> HTTPSettings:
        if self.body_regex is not None and self.method == "HEAD":
            raise ValueError("body_regex needs method GET (a HEAD answer has no body)")
        return self


MAX_REDIRECTS = 10


@dataclass
class Answer:
    """What a probe keeps of an HTTP answer: its status, headers and (bounded) body."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    encoding: str
    expiries: Expiries = Expiries()

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "location" in self.headers


def read_bounded(response: httpx.Response, limit: int, deadline: float) -> bytes:
    """The body of ``response``, at most ``limit`` bytes (decoded); past it or past ``deadline``
    (time.monotonic()), reading stops: a ProbeFailure, and the connection is dropped with the rest unread."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise ProbeFailure(TOO_LARGE, f"{response.request.url} answered more than {limit} bytes (reading stopped)")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise ProbeFailure(TIMEOUT, f"{response.request.url} still sending after the probe's bound")
    return b"".join(chunks)


def request(
    url: str,
    settings: TLSSettings,
    timeout: float,
    *,
    method: str = "GET",
    follow: bool = False,
    allowed_hosts: Collection[str] = frozenset(),
    limit: int = MAX_RESPONSE_BYTES,
    phases: Phases | None = None,
    **kwargs,
) -> Answer:
    """One HTTP exchange, bounded by ``timeout`` as a whole and by ``limit`` bytes of each body, never to
    a host the configuration does not name; the answer carries the expiry of the first TLS peer's
    certificate chain. Network errors become ProbeFailure. ``phases``: the time of each is added there
    (resolve, connect, tls, and request: the rest of the exchange)."""
    import httpx

    phases = phases if phases is not None else Phases()
    parts = urlsplit(url)
    # Resolved first: the resolve phase (httpcore's own lookup then finds the system's cache, if any).
    resolve(parts.hostname or "", parts.port or PORTS[parts.scheme], phases)
    started: dict[str, float] = {}
    network = {"connect": 0.0, "tls": 0.0}

    def trace(event: str, info: dict) -> None:
        for step, phase in (("connection.connect_tcp.", "connect"), ("connection.start_tls.", "tls")):
            if event.startswith(step):
                if event.endswith(".started"):
                    started[phase] = time.monotonic()
                elif phase in started:
                    seconds = time.monotonic() - started.pop(phase)
                    phases.seconds[phase] = phases.seconds.get(phase, 0.0) + seconds
                    network[phase] += seconds

    named = {urlsplit(url).hostname} | set(allowed_hosts)
    deadline = time.monotonic() + timeout
    expiry: list[Expiries] = []

    def only_named_hosts(req: httpx.Request) -> None:
        if req.url.host not in named:
            raise ProbeFailure(
                STATUS,
                f"redirected to {req.url.host}, a host the configuration does not name "
                "(add it to redirect_hosts to follow)",
            )

    def keep_certificate(response: httpx.Response) -> None:
        if expiry:
            return
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        expiry.append(chain_expiries(ssl_object))

    verify = tls_context(settings.verify_tls, settings.ca_file)
    headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}  # the limit counts what is sent
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout),
            verify=verify,
            follow_redirects=False,  # followed here, so that a redirect's body is bounded too
            trust_env=False,
            event_hooks={"request": [only_named_hosts], "response": [keep_certificate]},
        ) as client:
            next_request: httpx.Request | None = client.build_request(method, url, headers=headers, **kwargs)
            exchange = time.monotonic()
            for _ in range(MAX_REDIRECTS + 1):
                assert next_request is not None
                next_request.extensions["trace"] = trace
                response = client.send(next_request, stream=True)
                try:
                    if follow and response.next_request is not None:
                        next_request = response.next_request
                        continue
                    body = read_bounded(response, limit, deadline)
                    phases.seconds["request"] = phases.seconds.get("request", 0.0) + max(
                        0.0, time.monotonic() - exchange - network["connect"] - network["tls"]
                    )
                    return Answer(
                        response.status_code,
                        response.headers,
                        body,
                        response.encoding or "utf-8",
                        expiry[0] if expiry else Expiries(),
                    )
                finally:
                    response.close()  # unread bytes are dropped with the connection
            raise ProbeFailure(STATUS, f"more than {MAX_REDIRECTS} redirects from {url}")
    except ProbeFailure:
        raise
    except Exception as error:  # httpx wraps the socket's errors; classify reads the causes and the text
        raise classify(error) from None


class HTTPProbe(Probe):
    kind = "http"
    Settings = HTTPSettings
    settings: HTTPSettings

    def prepare(self) -> None:
        import httpx  # noqa: F401

        super().prepare()

    def check(self) -> CheckResult:
        s = self.settings
        response = request(
            s.url,
            s,
            self.timeout,
            method=s.method,
            follow=s.follow_redirects,
            allowed_hosts=set(s.redirect_hosts),
            limit=s.max_response_bytes,
            phases=self.phase,
        )
        if response.status_code not in s.expect_status:
            where = f" (to {response.headers.get('location')})" if response.is_redirect else ""
            raise ProbeFailure(
                STATUS,
                f"{s.method} {s.url} answered {response.status_code}{where}, "
                f"expected {', '.join(map(str, s.expect_status))}",
            )
        if s.body_regex is not None and not re.search(s.body_regex, response.text):
            raise ProbeFailure(CONTENT, f"the body of {s.url} does not match {s.body_regex!r}")
        return tls_result(response.expiries)
