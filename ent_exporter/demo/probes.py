"""Probe targets for the demo, all on loopback and started by the demo itself.

- a stand-in HTTPS service (a self-signed certificate made at start, trusted through
  ``ca_file``) answering ``GET /<connector>``: the ``pronote`` probe is up, with a certificate
  expiry to show; ``touch DIR/outage-<connector>`` makes it answer 503, so that probe fails
  (the same control file also makes the live generator's calls of that connector fail);
- the exporter's own ``/healthz`` (the ``ent`` probe, up);
- a deliberately dead port (bound, never listening: connections are refused): the ``gar``
  probe is down from the start, so the dashboard shows one probe down out of the box.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Collection
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ent_exporter.engine import clock as clocks

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 5  # a demo moves fast; the default of real configurations is 30 s
CERTIFICATE_DAYS = 90


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid from yesterday for CERTIFICATE_DAYS days."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ent-exporter demo stand-in")])
    now = clocks.SYSTEM.now().replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=CERTIFICATE_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "stand-in.pem", directory / "stand-in.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def loopback_socket(avoid: Collection[int] = frozenset()) -> socket.socket:
    """A TCP socket bound to an ephemeral loopback port that is not in ``avoid``.

    The demo's listening port is checked free before the database starts but bound only once the data
    is loaded; meanwhile the kernel may hand that very port to one of these ephemeral binds."""
    held = []
    try:
        while True:
            candidate = socket.socket()
            candidate.bind(("127.0.0.1", 0))
            if candidate.getsockname()[1] not in avoid:
                return candidate
            held.append(candidate)  # kept bound until a good one is found, so it is not handed out again
    finally:
        for sock in held:
            sock.close()


class DemoTargets:
    """Starts the stand-in service and holds the dead port; ``probes`` is the demo's probes: section.

    ``avoid``: ports the targets must not take (the exporter's own, bound later)."""

    def __init__(self, state_dir: Path, avoid: Collection[int] = frozenset()) -> None:
        control_dir = Path(state_dir)
        self.certificate, key = self_signed(control_dir / "stand-in")

        class StandIn(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                connector = self.path.strip("/").split("?")[0]
                if (control_dir / f"outage-{connector}").exists():
                    status, body = 503, f"{connector}: service unavailable (demo outage file)\n"
                else:
                    status, body = 200, f"{connector}: stand-in service of the ent-exporter demo\n"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = loopback_socket(avoid)
        self.server.server_address = self.server.socket.getsockname()
        self.server.server_activate()
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-stand-in", daemon=True)
        self._thread.start()
        self.dead = loopback_socket(avoid)  # bound, never listening: refused, and no one else can take it

    def probes(self, exporter_address: str, exporter_port: int) -> list[dict]:
        host = "127.0.0.1" if exporter_address in ("0.0.0.0", "::", "") else exporter_address
        host = f"[{host}]" if ":" in host else host
        common = {"interval_seconds": PROBE_INTERVAL_SECONDS, "timeout_seconds": 2}
        return [
            {
                "connector": "pronote",
                "kind": "http",
                "url": f"https://127.0.0.1:{self.server.server_address[1]}/pronote",
                "ca_file": str(self.certificate),
                "body_regex": "stand-in",
                **common,
            },
            {"connector": "ent", "kind": "http", "url": f"http://{host}:{exporter_port}/healthz", **common},
            {"connector": "gar", "kind": "tcp", "address": f"127.0.0.1:{self.dead.getsockname()[1]}", **common},
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.dead.close()
