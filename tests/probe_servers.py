"""Real servers on loopback for the probe tests, started by the tests: OpenLDAP's slapd (its own
config and directory, written here), HTTPS servers with certificates made here, a CAS protocol
fixture (no CAS server is installable from the package registries), an SMTP server (aiosmtpd)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.support import free_port, wait_until

# Fixed dates, never the wall clock: valid from 2020 to a second of 2099; the expired one ended in 2021.
VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2099, 6, 30, 12, 34, 56, tzinfo=UTC)
EXPIRED_AFTER = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)


# -- certificates ---------------------------------------------------------------------------


@dataclass
class Certificates:
    ca: Path  # the test CA (PEM), what a probe's ca_file points to
    cert: Path  # the server's certificate, for 127.0.0.1 and localhost, signed by the CA
    key: Path
    not_after: datetime

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def _ca_extensions(builder, public_key):
    from cryptography import x509

    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_certificates(
    directory: Path,
    not_after: datetime = NOT_AFTER,
    name: str = "server",
    intermediate_not_after: datetime | None = None,
) -> Certificates:
    """A test CA and a server certificate it signs; with ``intermediate_not_after``, signed through an
    intermediate CA expiring then, the server's PEM holding the chain (leaf, then the intermediate)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ent-exporter test CA {name}")])
    ca = _ca_extensions(
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(VALID_FROM)
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC)),
        ca_key.public_key(),
    ).sign(ca_key, hashes.SHA256())
    issuer_key, issuer_name, chain = ca_key, ca_name, []
    if intermediate_not_after is not None:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ent-exporter test intermediate {name}")])
        intermediate = (
            _ca_extensions(
                x509.CertificateBuilder()
                .subject_name(issuer_name)
                .issuer_name(ca_name)
                .public_key(issuer_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(VALID_FROM)
                .not_valid_after(intermediate_not_after),
                issuer_key.public_key(),
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        chain = [intermediate]
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(VALID_FROM)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    paths = Certificates(directory / f"{name}-ca.pem", directory / f"{name}.pem", directory / f"{name}.key", not_after)
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *chain]))
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths.key.chmod(0o600)
    return paths


# -- slapd ----------------------------------------------------------------------------------

SUFFIX = "dc=ent,dc=test"
PROBE_DN = f"uid=probe,ou=people,{SUFFIX}"
PROBE_PASSWORD = "probe-secret"
ADMIN_DN = f"cn=admin,{SUFFIX}"
DIRECTORY_LDIF = f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: ent
o: ENT test

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: {PROBE_DN}
objectClass: inetOrgPerson
uid: probe
cn: Probe account
sn: Probe
userPassword: {PROBE_PASSWORD}

dn: uid=teacher1,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: teacher1
cn: Teacher One
sn: One
"""


def binary(name: str) -> str:
    import pytest

    for candidate in (shutil.which(name), f"/usr/sbin/{name}"):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.fail(
        f"{name} is not installed: install the Debian packages slapd and ldap-utils (the README's test command does it)"
    )


class Slapd:
    """One slapd process with its own slapd.conf, directory and certificate; ldap:// and ldaps:// ports."""

    def __init__(self, work: Path, certificates: Certificates) -> None:
        self.work = work
        self.port, self.tls_port = free_port(), free_port()
        work.mkdir(parents=True, exist_ok=True)
        (work / "data").mkdir(exist_ok=True)
        self.conf = work / "slapd.conf"
        self.conf.write_text(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {work}/slapd.pid
TLSCertificateFile {certificates.cert}
TLSCertificateKeyFile {certificates.key}
TLSCACertificateFile {certificates.ca}
database mdb
maxsize 10485760
directory {work}/data
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw admin-secret
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
""")
        ldif = work / "directory.ldif"
        ldif.write_text(DIRECTORY_LDIF)
        result = subprocess.run(
            [binary("slapadd"), "-f", str(self.conf), "-l", str(ldif)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        self.process: subprocess.Popen | None = None

    def start(self) -> Slapd:
        log = (self.work / "slapd.log").open("a")
        self.process = subprocess.Popen(
            [
                binary("slapd"),
                "-d",
                "0",
                "-f",
                str(self.conf),
                "-h",
                f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: _accepts(self.port) and _accepts(self.tls_port), 30, message="slapd listening")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


# -- HTTP(S) servers and the CAS fixture -------------------------------------------------------


@dataclass
class Recorder:
    """What a test server was asked: (method, path) in order."""

    requests: list[tuple[str, str]] = field(default_factory=list)


class WebServer:
    """A ThreadingHTTPServer on 127.0.0.x in a thread, TLS when given a context; routes by path."""

    def __init__(
        self,
        handler_class: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        self.recorder = Recorder()
        recorder = self.recorder

        class Handler(handler_class):  # type: ignore[misc, valid-type]
            def log_message(self, *args) -> None:
                pass

            def handle_one_request(self) -> None:
                super().handle_one_request()
                if getattr(self, "raw_requestline", b"") and getattr(self, "command", None):
                    recorder.requests.append((self.command, self.path))

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.address = address
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if context is not None else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.address}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class PagesHandler(BaseHTTPRequestHandler):
    """/ok (200, a body naming the service), /down (503), /elsewhere?to=URL (302 there)."""

    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path == "/ok":
            self._reply(200, b"<html><title>Pronote</title><body>Espace Pronote</body></html>")
        elif parts.path == "/down":
            self._reply(503, b"maintenance")
        elif parts.path == "/elsewhere":
            self._reply(302, b"", {"Location": parse_qs(parts.query)["to"][0]})
        else:
            self._reply(404, b"not found")

    do_HEAD = do_GET


def guarded_handler(expected: dict[str, str], seen: list[dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    """/private: 200 only when every header of ``expected`` came with its exact value (Authorization
    included), else 401 with a WWW-Authenticate challenge; each request's headers are kept in ``seen``."""

    class GuardedHandler(PagesHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(dict(self.headers.items()))
            if urlsplit(self.path).path != "/private":
                super().do_GET()
            elif all(self.headers.get(name) == value for name, value in expected.items()):
                self._reply(200, b"<html><body>tableau de bord</body></html>")
            else:
                self._reply(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="ent"'})

        do_HEAD = do_GET

    return GuardedHandler


@dataclass
class CASState:
    users: dict[str, str]
    granting: dict[str, str] = field(default_factory=dict)  # TGT -> user
    service_tickets: dict[str, tuple[str, str]] = field(default_factory=dict)  # ST -> (user, service)
    validated: list[str] = field(default_factory=list)
    logged_out: list[str] = field(default_factory=list)
    login_form: bool = True
    reject_validation: bool = False


def cas_handler(state: CASState) -> type[BaseHTTPRequestHandler]:
    """The CAS protocol 3.0 endpoints a probe uses, under /cas: /login, /v1/tickets (REST), /serviceValidate."""

    class CASHandler(PagesHandler):
        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            return {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/cas/login":
                body = (
                    b'<html><body><form id="fm1" method="post" action="/cas/login">'
                    b'<input name="username"/><input type="password" name="password"/>'
                    b'<input type="hidden" name="execution" value="e1s1"/></form></body></html>'
                    if state.login_form
                    else b"<html><body>Service unavailable</body></html>"
                )
                self._reply(200, body)
            elif parts.path == "/cas/serviceValidate":
                ticket, service = query.get("ticket", ""), query.get("service", "")
                owner = state.service_tickets.pop(ticket, None)  # a service ticket is valid once
                if owner is not None and owner[1] == service and not state.reject_validation:
                    state.validated.append(ticket)
                    body = (
                        "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'>\n"
                        f"  <cas:authenticationSuccess>\n    <cas:user>{owner[0]}</cas:user>\n"
                        "  </cas:authenticationSuccess>\n</cas:serviceResponse>\n"
                    )
                else:
                    body = (
                        "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'>\n"
                        '  <cas:authenticationFailure code="INVALID_TICKET">Ticket not recognized'
                        "</cas:authenticationFailure>\n</cas:serviceResponse>\n"
                    )
                self._reply(200, body.encode(), {"Content-Type": "application/xml"})
            else:
                self._reply(404, b"not found")

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            form = self._form()
            if path == "/cas/v1/tickets":
                if state.users.get(form.get("username", "")) != form.get("password"):
                    self._reply(401, b"authentication failed")
                    return
                tgt = f"TGT-{len(state.granting) + 1}-{uuid.uuid4().hex}"
                state.granting[tgt] = form["username"]
                self._reply(201, b"", {"Location": f"{self._base()}/cas/v1/tickets/{tgt}"})
            elif path.startswith("/cas/v1/tickets/TGT-"):
                tgt = path.rsplit("/", 1)[1]
                if tgt not in state.granting or "service" not in form:
                    self._reply(404, b"no such ticket")
                    return
                st = f"ST-{len(state.service_tickets) + len(state.validated) + 1}-{uuid.uuid4().hex}"
                state.service_tickets[st] = (state.granting[tgt], form["service"])
                self._reply(200, st.encode(), {"Content-Type": "text/plain"})
            else:
                self._reply(404, b"not found")

        def do_DELETE(self) -> None:  # noqa: N802
            tgt = urlsplit(self.path).path.rsplit("/", 1)[1]
            if state.granting.pop(tgt, None) is not None:
                state.logged_out.append(tgt)
            self._reply(200, b"")

        def _base(self) -> str:
            scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
            host, port = self.server.server_address[:2]
            return f"{scheme}://{host}:{port}"

    return CASHandler


class Silent:
    """A port that accepts connections (the kernel's backlog) and never says a word: a hung server."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]

    def close(self) -> None:
        self.socket.close()


class Greeter:
    """A TCP server that writes one line to each connection and keeps it open (an SMTP relay refusing service)."""

    def __init__(self, line: bytes) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.line = line
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            connection.sendall(self.line)
            self.connections.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            connection.close()


def closed_port() -> socket.socket:
    """A port bound and not listening: connecting to it is refused, and nothing else can take it meanwhile."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    return holder
