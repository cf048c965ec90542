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

Every key is applied or refused: ``cipher_suites`` (Go's names, mapped to OpenSSL's; TLS 1.0 to 1.2
only, as in Go), ``curve_preferences`` (one curve: Python's ssl sets one), ``prefer_server_cipher_suites``,
``client_allowed_sans`` (checked after the handshake). ``http2`` is accepted and warned about (HTTP/1.1
is served); unknown keys are errors.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
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
# Go's names of the TLS 1.0-1.2 suites (crypto/tls) -> OpenSSL's.
CIPHER_SUITES = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",  # (Go's older aliases)
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3's suites: accepted in the list, as Go accepts them, and not selectable (neither Go nor
# Python's ssl lets a server choose them: OpenSSL's TLS 1.3 suites are always on).
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# Go's curve names -> OpenSSL's.
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
# An HTTP field name (RFC 9110 token) and a value without control characters (HTAB allowed).
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
# Headers the server sets itself (framing, connection handling): a configured one would break a response.
SERVER_HEADERS = ("content-length", "transfer-encoding", "connection", "content-encoding", "content-type")


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
    cipher_suites: list[str] | None = Field(
        default=None,
        description="the TLS 1.0-1.2 suites allowed, Go's names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256...);"
        " TLS 1.3's are always OpenSSL's",
    )
    curve_preferences: list[str] | None = Field(
        default=None, description="the key-exchange curve: one of CurveP256, CurveP384, CurveP521, X25519"
    )
    prefer_server_cipher_suites: bool | None = Field(
        default=None, description="the server's order of suites wins over the client's (default: it does)"
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
    """A validated web configuration: an SSL context (or None), a basic-auth check, extra headers."""

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
        # The header's digest -> the user it proved (bcrypt is slow on purpose; exporter-toolkit caches too).
        self._verified: dict[bytes, str] = {}
        self._lock = threading.Lock()
        # Unknown users are checked against a hash of the costliest configured cost: same answer time.
        self._dummy = _dummy_hash(max((_cost(hashed) for hashed in users.values()), default=10)) if users else b""

    @staticmethod
    def _key(header: str) -> bytes:
        return hashlib.sha256(header.encode(errors="surrogateescape")).digest()

    def cached(self, header: str | None) -> bool:
        """Whether ``header`` passed a bcrypt check before (no bcrypt now); always True with no users."""
        if not self.users:
            return True
        if not header:
            return False
        with self._lock:
            return self._key(header) in self._verified

    @staticmethod
    def credentials(header: str | None) -> tuple[str, str] | None:
        """The (user, password) of a basic-auth header, None when it is not one."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, colon, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (user, password) if colon else None

    def verify(self, header: str | None) -> bool:
        """The bcrypt check of a basic-auth header (slow on purpose: run it off the event loop)."""
        if self.cached(header):
            return True
        parsed = self.credentials(header)
        if parsed is None:
            return False
        import bcrypt

        user, password = parsed
        hashed = self.users.get(user)
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or self._dummy) and hashed is not None
        except ValueError:
            ok = False
        if ok:
            with self._lock:
                if len(self._verified) >= 1000:
                    self._verified.clear()
                self._verified[self._key(header or "")] = user
        return ok

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries valid basic-auth credentials (always, with no users)."""
        return self.cached(header) or self.verify(header)

    def adopt_cache(self, previous: WebConfig) -> None:
        """Keeps the checks ``previous`` cached for users whose hash did not change (a reload)."""
        with previous._lock:
            kept = {
                key: user
                for key, user in previous._verified.items()
                if self.users.get(user) == previous.users.get(user)
            }
        with self._lock:
            self._verified.update(kept)

    def san_allowed(self, peercert: dict | None) -> bool:
        """Whether a verified client certificate names one of client_allowed_sans (DNS, IP, e-mail, URI)."""
        if self.client_allowed_sans is None:
            return True
        names = [value for _kind, value in (peercert or {}).get("subjectAltName", ())]
        allowed = set(self.client_allowed_sans)
        for name in names:
            if name in allowed:
                return True
            try:
                address = ipaddress.ip_address(name.strip())
            except ValueError:
                continue
            if any(_same_address(address, value) for value in allowed):
                return True
        return False

    def describe(self) -> dict[str, Any]:
        """What a reload compares: TLS, users and their hashes, headers, allowed SANs."""
        return {
            "tls": self.ssl_context is not None,
            "users": dict(self.users),
            "headers": dict(self.headers),
            "client_allowed_sans": self.client_allowed_sans,
        }


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == address
    except ValueError:
        return False


def changes(old: WebConfig | None, new: WebConfig | None) -> list[str]:
    """What differs between two web configurations, in words (for the log of a reload)."""
    before = (
        old.describe() if old is not None else {"tls": False, "users": {}, "headers": {}, "client_allowed_sans": None}
    )
    after = (
        new.describe() if new is not None else {"tls": False, "users": {}, "headers": {}, "client_allowed_sans": None}
    )
    said = []
    if before["tls"] != after["tls"]:
        said.append(f"TLS {'on' if after['tls'] else 'off'}")
    added = sorted(set(after["users"]) - set(before["users"]))
    removed = sorted(set(before["users"]) - set(after["users"]))
    changed = sorted(u for u in set(after["users"]) & set(before["users"]) if after["users"][u] != before["users"][u])
    if added:
        said.append(f"users added: {', '.join(added)}")
    if removed:
        said.append(f"users removed: {', '.join(removed)}")
    if changed:
        said.append(f"passwords changed: {', '.join(changed)}")
    if before["headers"] != after["headers"]:
        said.append(f"headers: {', '.join(sorted(after['headers'])) or 'none'}")
    if before["client_allowed_sans"] != after["client_allowed_sans"]:
        said.append(f"client_allowed_sans: {', '.join(after['client_allowed_sans'] or []) or 'any'}")
    if before["tls"] and after["tls"]:
        said.append("certificate and TLS settings re-read")
    return said


_dummies: dict[int, bytes] = {}
_dummies_lock = threading.Lock()


def _cost(hashed: bytes) -> int:
    """The cost of a bcrypt hash ($2b$12$... -> 12)."""
    try:
        return int(hashed[4:6])
    except ValueError:
        return 10


def _dummy_hash(cost: int) -> bytes:
    """A bcrypt hash of nothing in particular at ``cost``, checked against for unknown users."""
    with _dummies_lock:
        if cost not in _dummies:
            import bcrypt

            _dummies[cost] = bcrypt.hashpw(b"-", bcrypt.gensalt(cost))
        return _dummies[cost]


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
        if not re.fullmatch(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}", hashed):
            raise fail(f"basic_auth_users.{user}", "not a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        users[user] = hashed.encode()
    for name, value in parsed.http_server_config.headers.items():
        key = f"http_server_config.headers.{name}"
        if not HEADER_NAME.fullmatch(name):
            raise fail(key, "not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)")
        if not HEADER_VALUE.fullmatch(value):
            raise fail(key, "the value holds a line break or another control character (it would inject headers)")
        if name.lower() in SERVER_HEADERS:
            raise fail(key, "set by the server itself for each response")
    context = None
    tls = parsed.tls_server_config
    if tls is not None:
        context = _ssl_context(tls, path.parent, fail)
    elif users:
        log.warning("%s: basic_auth_users without tls_server_config: passwords travel in clear over HTTP", path)
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
    elif tls.client_allowed_sans is not None:
        raise fail(
            "tls_server_config.client_allowed_sans",
            "needs a verified client certificate: set client_auth_type to RequireAndVerifyClientCert"
            " (or VerifyClientCertIfGiven) and client_ca_file",
        )
    if tls.client_allowed_sans is not None and not tls.client_allowed_sans:
        raise fail(
            "tls_server_config.client_allowed_sans", "empty: no client could connect (leave it out to allow any)"
        )
    _apply_ciphers(context, tls, fail)
    if tls.curve_preferences is not None:
        unknown = [name for name in tls.curve_preferences if name not in CURVES]
        if unknown:
            raise fail(
                "tls_server_config.curve_preferences", f"unknown curve {unknown[0]} (known: {', '.join(CURVES)})"
            )
        if len(tls.curve_preferences) != 1:
            raise fail(
                "tls_server_config.curve_preferences",
                "Python's ssl sets one curve, not an order of several: list exactly one",
            )
        context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    if tls.prefer_server_cipher_suites is True:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    elif tls.prefer_server_cipher_suites is False:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def _apply_ciphers(context: ssl.SSLContext, tls: TLSServerConfig, fail: Any) -> None:
    """cipher_suites as OpenSSL's cipher list for TLS 1.0-1.2; a name that cannot be applied is refused."""
    if tls.cipher_suites is None:
        return
    key = "tls_server_config.cipher_suites"
    unknown = [name for name in tls.cipher_suites if name not in CIPHER_SUITES and name not in TLS13_SUITES]
    if unknown:
        raise fail(key, f"unknown cipher suite {unknown[0]} (Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
    wanted = [CIPHER_SUITES[name] for name in tls.cipher_suites if name in CIPHER_SUITES]
    if not wanted:
        if context.minimum_version < ssl.TLSVersion.TLSv1_3:
            raise fail(key, "no TLS 1.0-1.2 suite listed: list one, or set min_version: TLS13")
        return
    try:
        context.set_ciphers(":".join(dict.fromkeys(wanted)))
    except ssl.SSLError:
        raise fail(key, "none of these suites is available in this OpenSSL") from None
    available = {cipher["name"] for cipher in context.get_ciphers()}
    missing = [name for name in tls.cipher_suites if name in CIPHER_SUITES and CIPHER_SUITES[name] not in available]
    if missing:
        raise fail(key, f"{missing[0]} is not available in this OpenSSL ({ssl.OPENSSL_VERSION})")
