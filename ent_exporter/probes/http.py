"""HTTP(S): GET or HEAD a URL (an SSO or service page: Pronote, the GAR, EduConnect, the ENT's home page),
expected status codes, optional body regular expression, redirects followed or not."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ent_exporter.probes.base import (
    CONTENT,
    STATUS,
    CheckResult,
    Probe,
    ProbeFailure,
    ProbeSettings,
    TLSSettings,
    certificate_expiry,
    classify,
    parse_url,
    tls_context,
)

PORTS = {"http": 80, "https": 443}


class HTTPSettings(ProbeSettings, TLSSettings):
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


def request(
    url: str,
    settings: TLSSettings,
    timeout: float,
    *,
    method: str = "GET",
    follow: bool = False,
    allowed_hosts: Collection[str] = frozenset(),
    **kwargs,
):
    """One HTTP exchange, bounded by ``timeout``, never to a host the configuration does not name;
    returns (response, expiry of the first TLS peer's certificate or None). Network errors become ProbeFailure."""
    import httpx

    named = {urlsplit(url).hostname} | set(allowed_hosts)
    expiry: list[float | None] = []

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
        expiry.append(certificate_expiry(ssl_object.getpeercert(True)) if ssl_object else None)

    verify = tls_context(settings.verify_tls, settings.ca_file)
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout),
            verify=verify,
            follow_redirects=follow,
            trust_env=False,
            event_hooks={"request": [only_named_hosts], "response": [keep_certificate]},
        ) as client:
            response = client.request(method, url, **kwargs)
            response.read()
    except ProbeFailure:
        raise
    except Exception as error:  # httpx wraps the socket's errors; classify reads the causes and the text
        raise classify(error) from None
    return response, (expiry[0] if expiry else None)


class HTTPProbe(Probe):
    kind = "http"
    Settings = HTTPSettings
    settings: HTTPSettings

    def check(self) -> CheckResult:
        s = self.settings
        response, expiry = request(
            s.url, s, self.timeout, method=s.method, follow=s.follow_redirects, allowed_hosts=set(s.redirect_hosts)
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
        return CheckResult(expiry)
