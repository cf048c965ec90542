"""HTTP(S): GET or HEAD a URL (an SSO or service page: Pronote, the GAR, EduConnect, the ENT's home page),
expected status codes, optional body regular expression, redirects followed or not."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ent_exporter.probes.base import (
    AUTH,
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
    require_variable,
    resolve,
    tls_context,
    tls_result,
)

if TYPE_CHECKING:
    import httpx

PORTS = {"http": 80, "https": 443}
# RFC 9110's token: what a header name may be made of.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers the probe sets itself: Authorization through basic_auth or bearer_token_* (its secret never in
# the file), the others by the HTTP client (a wrong one would break the exchange or its bounds).
RESERVED_HEADERS = {"authorization", "host", "content-length", "transfer-encoding", "connection", "accept-encoding"}


def read_secret_file(path: str) -> str:
    """The secret a file holds (one line; a final newline is not part of it). The message of a file that
    cannot be used names the file, never its content."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise ValueError(f"cannot read {path!r} ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is not UTF-8 text") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ValueError(f"{path!r} is empty")
    if "\n" in secret or "\r" in secret:
        raise ValueError(f"{path!r} holds more than one line")
    return secret


def require_secret_variable(variable: str | None, info: ValidationInfo) -> str | None:
    """A ``*_env`` key: the variable is set, and not empty, when the configuration is loaded."""
    require_variable(variable, info)
    environ = (info.context or {}).get("environ") if info.context else None
    if variable is not None and not (os.environ if environ is None else environ)[variable]:
        raise ValueError(f"environment variable {variable} is empty")
    return variable


def secret_from(variable: str | None, path: str | None, what: str, info: ValidationInfo) -> str | None:
    """The secret of a ``*_env`` or ``*_file`` key (at most one given), read at load."""
    if variable is not None and path is not None:
        raise ValueError(f"give {what}_env or {what}_file, not both")
    if variable is not None:
        environ = (info.context or {}).get("environ") if info.context else None
        return (os.environ if environ is None else environ)[variable]
    return read_secret_file(path) if path is not None else None


class BasicAuth(BaseModel):
    """HTTP basic authentication: a user name, and its password from the environment or a file."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, description="the probe's user name")
    password_env: str | None = Field(None, description="environment variable holding the password")
    password_file: str | None = Field(None, description="file holding the password (one line)")
    _password: str | None = PrivateAttr(None)

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("a basic auth user name cannot hold ':'")
        return value

    @field_validator("password_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None:
            read_secret_file(value)
        return value

    @field_validator("password_env")
    @classmethod
    def _variable_set(cls, value: str | None, info: ValidationInfo) -> str | None:
        return require_secret_variable(value, info)

    @model_validator(mode="after")
    def _password_given(self, info: ValidationInfo) -> BasicAuth:
        if self.password_env is None and self.password_file is None:
            raise ValueError("basic_auth needs password_env or password_file (never the password itself)")
        self._password = secret_from(self.password_env, self.password_file, "password", info)
        return self

    def __repr__(self) -> str:  # (pydantic's would not show the private password either; said here)
        return f"BasicAuth(username={self.username!r})"


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
    headers: dict[str, str] = Field(
        default_factory=dict, description="headers sent with the request (not Authorization: see basic_auth)"
    )
    basic_auth: BasicAuth | None = Field(
        None, description="basic authentication: username, and password_env or password_file"
    )
    bearer_token_env: str | None = Field(None, description="environment variable holding a bearer token")
    bearer_token_file: str | None = Field(None, description="file holding a bearer token (one line)")
    _bearer_token: str | None = PrivateAttr(None)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, content in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in RESERVED_HEADERS:
                hint = " (use basic_auth or bearer_token_env/_file)" if name.lower() == "authorization" else ""
                raise ValueError(f"{name} is set by the probe itself{hint}")
            if any(character in content for character in "\r\n\0"):
                raise ValueError(f"the value of {name} holds a line break")
        return value

    @field_validator("bearer_token_file")
    @classmethod
    def _token_readable(cls, value: str | None) -> str | None:
        if value is not None:
            read_secret_file(value)
        return value

    @field_validator("bearer_token_env")
    @classmethod
    def _token_set(cls, value: str | None, info: ValidationInfo) -> str | None:
        return require_secret_variable(value, info)

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
    def _body_needs_get(self, info: ValidationInfo) -> HTTPSettings:
        if self.body_regex is not None and self.method == "HEAD":
            raise ValueError("body_regex needs method GET (a HEAD answer has no body)")
        if self.basic_auth is not None and (self.bearer_token_env or self.bearer_token_file):
            raise ValueError("give basic_auth or a bearer token, not both")
        self._bearer_token = secret_from(self.bearer_token_env, self.bearer_token_file, "bearer_token", info)
        return self

    def request_headers(self) -> dict[str, str]:
        """The configured headers and, with credentials, the Authorization header (secrets read at load)."""
        headers = dict(self.headers)
        if self._bearer_token is not None:
            headers["Authorization"] = f"Bearer {self._bearer_token}"
        elif self.basic_auth is not None and self.basic_auth._password is not None:
            import base64

            pair = f"{self.basic_auth.username}:{self.basic_auth._password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        return headers

    @property
    def authenticates(self) -> bool:
        return self.basic_auth is not None or self._bearer_token is not None


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
            raise ProbeFailure(
                TOO_LARGE,
                f"{response.request.url} answered more than {limit} bytes (reading stopped)",
                CheckResult(http_status=response.status_code),
            )
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
    reports_status = True

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
            headers=s.request_headers(),
        )
        learnt = tls_result(response.expiries, response.status_code)
        if response.status_code not in s.expect_status:
            where = f" (to {response.headers.get('location')})" if response.is_redirect else ""
            # With credentials, 401 and 403 say the server refused them.
            reason = AUTH if s.authenticates and response.status_code in (401, 403) else STATUS
            raise ProbeFailure(
                reason,
                f"{s.method} {s.url} answered {response.status_code}{where}, "
                f"expected {', '.join(map(str, s.expect_status))}",
                learnt,
            )
        if s.body_regex is not None and not re.search(s.body_regex, response.text):
            raise ProbeFailure(CONTENT, f"the body of {s.url} does not match {s.body_regex!r}", learnt)
        return learnt
