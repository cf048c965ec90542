"""TLS and basic auth of the HTTP endpoint, in the exporter-toolkit web configuration format.

The file given with ``--web.config.file`` is the one node_exporter and the other official
exporters read (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md):

    tls_server_config:
      cert_file: server.crt          # relative paths: relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12             # TLS10 .. TLS13, default TLS12
      max_version: TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')

Keys of the format this exporter does not apply (cipher_suites, curve_preferences,
prefer_server_cipher_suites, http2) are accepted and ignored, with a warning; unknown keys are errors.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
import threading
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ent_exporter.config import ConfigError, _describe, load_yaml

log = logging.getLogger(__name__)

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
IGNORED = ("cipher_suites", "curve_preferences", "prefer_server_cipher_suites")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TLSServerConfig(_Section):
    """TLS of the endpoint: with it, plain HTTP gets no answer."""

    cert_file: str | None = Field(default=None, description="the server's certificate (PEM); relative to this file")
    key_file: str | None = Field(default=None, description="the certificate's private key (PEM); relative to this file")
    cert: str | None = Field(default=None, description="the certificate itself, inline PEM, instead of cert_file")
    key: str | None = Field(default=None, description="the private key itself, inline PEM, instead of key_file")
    client_auth_type: Literal[CLIENT_AUTH_TYPES] = Field(  # type: ignore[valid-type]
        default="NoClientCert",
        description="whether clients must show a certificate (mutual TLS) and whether it is verified",
    )
    client_ca_file: str | None = Field(
        default=None, description="the CAs that client certificates are verified against"
    )
    client_allowed_sans: list[str] | None = Field(
        default=None, description="when given, a client certificate must name one of these (subject alternative names)"
    )
    min_version: Literal[tuple(TLS_VERSIONS)] = Field(  # type: ignore[valid-type]
        default="TLS12", description="the oldest TLS version accepted"
    )
    max_version: Literal[tuple(TLS_VERSIONS)] = Field(  # type: ignore[valid-type]
        default="TLS13", description="the newest TLS version accepted"
    )
    cipher_suites: list[str] | None = Field(default=None, description="accepted and not applied (Python's defaults)")
    curve_preferences: list[str] | None = Field(
        default=None, description="accepted and not applied (Python's defaults)"
    )
    prefer_server_cipher_suites: bool | None = Field(
        default=None, description="accepted and not applied (Python's defaults)"
    )


class HTTPServerConfig(_Section):
    """HTTP options of the endpoint."""

    http2: bool | None = Field(default=None, description="accepted and not applied (the endpoint speaks HTTP/1.1)")
    headers: dict[str, str] = Field(default_factory=dict, description="headers added to every response")


class WebConfigFile(_Section):
    """The file given with --web.config.file, in the exporter-toolkit format."""

    tls_server_config: TLSServerConfig | None = Field(
        default=None, description="TLS of the endpoint; absent, plain HTTP"
    )
    http_server_config: HTTPServerConfig = Field(
        default_factory=HTTPServerConfig, description="HTTP options of the endpoint"
    )
    basic_auth_users: dict[str, str] = Field(
        default_factory=dict, description="user name to bcrypt hash; with users, every path needs them"
    )


class WebConfig:
    """A validated web configuration: an SSL context (or None) and a basic-auth check."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        users: dict[str, bytes],
        headers: dict[str, str],
        client_allowed_sans: list[str] | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.users = users
        self.headers = headers
        self.client_allowed_sans = client_allowed_sans
        self._verified: dict[bytes, bool] = {}  # digest of a header -> it passed (bcrypt is slow on purpose)
        self._lock = threading.Lock()

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries valid basic-auth credentials (always, with no users)."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        key = hashlib.sha256(header.encode()).digest()
        with self._lock:
            if key in self._verified:
                return True
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        import bcrypt

        hashed = self.users.get(user)
        # Unknown users cost a bcrypt check too: the answer time does not tell which users exist.
        candidate = hashed or _dummy_hash()
        try:
            ok = bcrypt.checkpw(password.encode(), candidate) and hashed is not None
        except ValueError:
            ok = False
        if ok:
            with self._lock:
                if len(self._verified) > 1000:
                    self._verified.clear()
                self._verified[key] = True
        return ok


_dummy: list[bytes] = []


def _dummy_hash() -> bytes:
    """A bcrypt hash of nothing in particular (cost 10), checked against for unknown users."""
    if not _dummy:
        import bcrypt

        _dummy.append(bcrypt.hashpw(b"-", bcrypt.gensalt(10)))
    return _dummy[0]


def load_web_config(path: str | Path) -> WebConfig:
    """Reads and checks a web configuration file; ConfigError names the file and the key."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the web configuration ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the web configuration must be a mapping of keys, not {type(data).__name__}")
    try:
        parsed = WebConfigFile.model_validate(data)
    except ValidationError as error:
        lines = "\n".join(f"  {_describe(e)}" for e in error.errors())
        raise ConfigError(f"{path}: invalid web configuration\n{lines}") from None

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: invalid web configuration\n  {key}: {message}")

    users: dict[str, bytes] = {}
    for user, hashed in parsed.basic_auth_users.items():
        if not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
            raise fail(f"basic_auth_users.{user}", "not a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        users[user] = hashed.encode()
    context = None
    tls = parsed.tls_server_config
    if tls is not None:
        for key in IGNORED:
            if getattr(tls, key) is not None:
                log.warning(
                    "%s: tls_server_config.%s is not applied by ent-exporter (Python's ssl defaults are)", path, key
                )
        context = _ssl_context(tls, path.parent, fail)
    if parsed.http_server_config.http2:
        log.warning("%s: http_server_config.http2 is not supported, HTTP/1.1 is served", path)
    return WebConfig(
        context, users, parsed.http_server_config.headers, tls.client_allowed_sans if tls is not None else None
    )


def _ssl_context(tls: TLSServerConfig, base: Path, fail: Any) -> ssl.SSLContext:
    def resolve(name: str | None) -> str | None:
        return None if name is None else str(base / name)

    if not (tls.cert_file or tls.cert):
        raise fail("tls_server_config.cert_file", "required when tls_server_config is given")
    if not (tls.key_file or tls.key):
        raise fail("tls_server_config.key_file", "required when tls_server_config is given")
    for key in ("cert_file", "key_file", "client_ca_file"):
        name = getattr(tls, key)
        if name is not None and not Path(resolve(name)).is_file():  # type: ignore[arg-type]
            raise fail(f"tls_server_config.{key}", f"no such file: {resolve(name)}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if context.minimum_version > context.maximum_version:
        raise fail("tls_server_config.min_version", f"{tls.min_version} is above max_version {tls.max_version}")
    try:
        if tls.cert_file:
            context.load_cert_chain(resolve(tls.cert_file), resolve(tls.key_file))  # type: ignore[arg-type]
        else:
            import tempfile

            with tempfile.NamedTemporaryFile("w", suffix=".pem") as pem:
                pem.write(f"{tls.cert}\n{tls.key}\n")
                pem.flush()
                context.load_cert_chain(pem.name)
    except (ssl.SSLError, OSError) as error:
        raise fail("tls_server_config.cert_file", f"cannot load the certificate and key ({error})") from None
    if tls.client_auth_type != "NoClientCert":
        if tls.client_ca_file:
            try:
                context.load_verify_locations(resolve(tls.client_ca_file))
            except (ssl.SSLError, OSError) as error:
                raise fail("tls_server_config.client_ca_file", f"cannot load ({error})") from None
        else:
            raise fail("tls_server_config.client_ca_file", f"required with client_auth_type {tls.client_auth_type}")
        # Python's ssl cannot ask for a certificate without verifying it: the "Request"/"RequireAny"
        # types verify it against client_ca_file too.
        context.verify_mode = ssl.CERT_REQUIRED if tls.client_auth_type.startswith("Require") else ssl.CERT_OPTIONAL
    return context
