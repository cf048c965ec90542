"""The HTTP endpoint on an untrusted network: a total deadline for a request head, connection caps
(global and per peer), HEAD, Accept-Encoding with q-values, bodies refused, quiet client aborts,
no version disclosure, refusals logged once a minute; TLS (client SANs, cipher suites, curves),
basic auth (cached, bounded, even for unknown users) and headers from an exporter-toolkit web
configuration, scraped by a real Prometheus and re-read on SIGHUP."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import logging
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt
import pytest
import yaml

from ent_exporter.config import ConfigError
from ent_exporter.engine.collector import Family, Kind
from ent_exporter.engine.exposition import Exposition
from ent_exporter.web.config import load_web_config
from ent_exporter.web.guard import RefusalLog
from ent_exporter.web.server import MetricsServer, accepts_gzip
from tests.support import REPO, free_port, require_binary, run_cli, wait_until, write_config

FAMILY = Family("x_total", Kind.COUNTER, "x", ("structure",))


@pytest.fixture
def exposition():
    exposition = Exposition([FAMILY])
    exposition.publish({"a": {"x_total": {(f"S{i:06d}",): float(i) for i in range(30_000)}}})  # ~1 MB
    return exposition


@pytest.fixture
def server(exposition):
    servers = []

    def start(**kwargs) -> MetricsServer:
        server = MetricsServer("127.0.0.1", 0, exposition, lambda: {"status": "ok"}, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def request(port: int, method: str = "GET", path: str = "/metrics", **headers) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers)
    return conn.getresponse()


@pytest.mark.parametrize(
    "header, gzipped",
    [
        ("gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, deflate", False),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("*;q=0", False),
        ("identity", False),
        ("gzip;q=0, *", False),
        ("GZIP", True),
        ("", False),
        ("br;q=1.0, *;q=0.1", True),
        ("gzip;q=abc", False),
    ],
)
def test_accept_encoding_is_parsed_with_its_q_values(header, gzipped):
    assert accepts_gzip(header) is gzipped


def test_head_gzip_and_server_header(server, exposition):
    port = server().port
    head = request(port, "HEAD")
    assert head.status == 200 and head.read() == b""
    assert int(head.headers["Content-Length"]) == len(exposition.body())
    assert head.headers["Server"] == "ent-exporter"  # no Python version
    refused = request(port, **{"Accept-Encoding": "gzip;q=0"})
    assert refused.headers.get("Content-Encoding") is None and refused.read() == exposition.body()
    accepted = request(port, **{"Accept-Encoding": "gzip"})
    assert accepted.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(accepted.read()) == exposition.body()
    assert request(port, "HEAD", "/healthz").status == 200


def test_idle_and_half_sent_connections_are_closed_after_the_read_timeout(server):
    port = server(read_timeout=0.5).port
    for sent in (b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):  # idle; headers never finished
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(sent)
            client.settimeout(5)
            started = time.monotonic()
            assert client.recv(100) == b""  # closed by the server
            assert 0.4 < time.monotonic() - started < 3
    # A keep-alive connection, idle after its answer, too.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read()
    time.sleep(1)
    assert conn.sock.recv(10) == b""


def closed_within(client: socket.socket, seconds: float) -> float:
    """How long until the server closed ``client`` (which sends nothing more); fails after ``seconds``."""
    client.settimeout(seconds)
    started = time.monotonic()
    try:
        assert client.recv(100) == b""
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_a_full_listener_closes_the_oldest_waiting_connection_for_a_new_one(server):
    port = server(read_timeout=30, max_connections=3).port
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        started = time.monotonic()
        assert request(port).status == 200  # a 4th connection: served
        assert time.monotonic() - started < 1
        assert closed_within(held[0], 2) < 2  # the oldest idle one made room
        held[1].settimeout(0.3)
        with pytest.raises(TimeoutError):  # the others are still open
            held[1].recv(1)
    finally:
        for client in held:
            client.close()


def test_the_head_deadline_is_total_not_per_read(server):
    port = server(read_timeout=1).port
    with socket.create_connection(("127.0.0.1", port)) as client:
        started = time.monotonic()
        client.settimeout(0.2)
        head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        closed = False
        for byte in head:  # one byte every 0.2 s: each read is fast, the head never ends
            try:
                client.sendall(bytes([byte]))
                if client.recv(100) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
        elapsed = time.monotonic() - started
    assert closed and 0.9 < elapsed < 2, elapsed


def slowloris(port: int, count: int, source: str) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), source_address=(source, 0)) for _ in range(count)]


def test_slowloris_from_one_address_starves_nobody(server, caplog):
    """200 connections from 127.0.0.1 that each send a header byte every 0.5 s: 32 are kept (until
    their 2 s deadline), the others closed at once; scrapes from 127.0.0.2 keep being served."""
    port = server(read_timeout=2, max_untrusted_per_peer=32).port
    caplog.set_level(logging.WARNING, "ent_exporter.web.server")
    attackers = slowloris(port, 200, "127.0.0.1")
    try:
        for attacker in attackers:
            attacker.setblocking(False)
        durations = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for attacker in attackers:
                try:
                    attacker.send(b"X")
                except OSError:
                    pass
            started = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=("127.0.0.2", 0))
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            assert response.status == 200 and len(response.read()) > 1_000_000
            conn.close()
            durations.append(time.monotonic() - started)
            time.sleep(0.5)
        assert len(durations) >= 5 and max(durations) < 1, durations
    finally:
        for attacker in attackers:
            attacker.close()
    refusals = [r.getMessage() for r in caplog.records if "without credentials" in r.getMessage()]
    assert len(refusals) == 1, refusals  # 168 refusals, one line a minute
    assert refusals[0] == "127.0.0.1 holds 32 connections without credentials: closing its new ones"


def test_per_peer_cap_counts_only_connections_without_credentials(server, tmp_path):
    web = load_web_config(web_config_file(tmp_path, tls=False))
    port = server(web=web, read_timeout=30, max_untrusted_per_peer=4).port
    auth = {"Authorization": basic("prometheus", PASSWORD)}
    scrapers = []
    for _ in range(6):  # six connections that showed credentials: not capped
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=("127.0.0.3", 0))
        conn.request("GET", "/healthz", headers=auth)
        response = conn.getresponse()
        assert response.status == 200 and response.read()
        scrapers.append(conn)
    idle = slowloris(port, 4, "127.0.0.3")  # four without: the cap
    try:
        time.sleep(0.2)
        refused = slowloris(port, 1, "127.0.0.3")[0]
        assert closed_within(refused, 2) < 1  # closed at once, not after the deadline
        refused.close()
        other = slowloris(port, 1, "127.0.0.4")[0]  # another address is not affected
        other.settimeout(0.3)
        with pytest.raises(TimeoutError):
            other.recv(1)
        other.close()
        for conn in scrapers:  # and the authenticated keep-alive connections still answer
            conn.request("GET", "/metrics", headers=auth)
            response = conn.getresponse()
            assert response.status == 200 and response.read()
        # A connection that answered 401 has not proven anything: it still counts.
        idle[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        idle[0].settimeout(5)
        assert idle[0].recv(100).startswith(b"HTTP/1.1 401 Unauthorized\r\n")
        again = slowloris(port, 1, "127.0.0.3")[0]
        assert closed_within(again, 2) < 1
        again.close()
    finally:
        for client in idle:
            client.close()
        for conn in scrapers:
            conn.close()


def test_with_no_users_a_completed_request_lifts_a_connection_out_of_the_per_peer_cap(server):
    port = server(read_timeout=30, max_untrusted_per_peer=2).port
    served = []
    for _ in range(4):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200 and response.read()
        served.append(conn)
    idle = slowloris(port, 2, "127.0.0.1")
    try:
        time.sleep(0.2)
        refused = slowloris(port, 1, "127.0.0.1")[0]
        assert closed_within(refused, 2) < 1
        refused.close()
        for conn in served:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            assert response.status == 200 and response.read()
    finally:
        for client in idle:
            client.close()
        for conn in served:
            conn.close()


def raw_exchange(port: int, data: bytes) -> bytes:
    """What the server sends back to ``data`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(data)
        client.settimeout(5)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        return answer


def test_a_get_with_a_body_is_refused_and_the_connection_closed(server):
    port = server().port
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for framing in (f"Content-Length: {len(smuggled)}", "Transfer-Encoding: chunked"):
        body = smuggled if framing.startswith("Content") else b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
        answer = raw_exchange(port, f"GET /metrics HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode() + body)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:200]
        assert answer.count(b"HTTP/1.1") == 1 and b"\r\nConnection: close\r\n" in answer  # the body is not run
    answer = raw_exchange(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    answer = raw_exchange(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n") and b"\r\nAllow: GET, HEAD\r\n" in answer
    # Content-Length: 0 is no body; two requests on one connection (pipelined) are both answered.
    two = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(port, two)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"HTTP/1.1 404 Not Found\r\n" in answer
    assert raw_exchange(port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_refusals_are_logged_once_a_minute_per_kind_with_the_number_left_out(caplog):
    now = [100.0]
    refusals = RefusalLog(60, lambda: now[0])
    caplog.set_level(logging.WARNING, "ent_exporter.web.server")
    for _ in range(10):
        refusals.note("peer", "%s refused", "127.0.0.9")
    refusals.note("full", "listener full")
    now[0] += 59.9
    refusals.note("peer", "%s refused", "127.0.0.9")
    now[0] += 0.1
    refusals.note("peer", "%s refused", "127.0.0.8")
    refusals.note("peer", "%s refused", "127.0.0.8")
    assert [r.getMessage() for r in caplog.records] == [
        "127.0.0.9 refused",
        "listener full",
        "127.0.0.8 refused (10 more such refusals since the last line)",
    ]


def test_client_aborts_leave_no_traceback(server, capfd, caplog):
    port = server().port
    for _ in range(5):
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        client.recv(10)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        client.close()
    time.sleep(0.5)
    assert request(port).status == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


# -- TLS and basic auth --------------------------------------------------------------------


def _name(text: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, generated here (the CA's key kept in ca.key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = datetime.now(UTC)
    name = _name
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("test CA"))
        .issuer_name(name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("ent-exporter"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.crt", "cert": directory / "server.crt", "key": directory / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "ca.key").write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def make_client_certificate(directory: Path, stem: str, sans: list) -> tuple[str, str]:
    """A client certificate signed by the CA of make_certificates, naming ``sans``: (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


PASSWORD = "s3cret-scraper"


def web_config_file(directory: Path, tls: dict | bool = True, **more) -> Path:
    """A web configuration (TLS with the certificates made here, unless tls=False; a user
    "prometheus"); ``tls`` as a dict adds keys to tls_server_config, ``more`` top-level keys."""
    directory.mkdir(exist_ok=True)
    make_certificates(directory)
    path = directory / "web.yml"
    config: dict = {"basic_auth_users": {"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()}}
    if tls is not False:
        config["tls_server_config"] = {"cert_file": "server.crt", "key_file": "server.key", "min_version": "TLS12"}
        if isinstance(tls, dict):
            config["tls_server_config"].update(tls)
    path.write_text(yaml.safe_dump({**config, **more}))
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def test_prometheus_scrapes_over_tls_with_basic_auth(server, tmp_path):
    web = load_web_config(web_config_file(tmp_path))
    port = server(web=web).port
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))

    def get(authorization: str | None) -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": authorization} if authorization else {})
        response = conn.getresponse()
        response.read()
        return response.status

    assert get(basic("prometheus", PASSWORD)) == 200
    assert get(basic("prometheus", "wrong")) == 401
    assert get(basic("nobody", PASSWORD)) == 401
    assert get(None) == 401
    with socket.create_connection(("127.0.0.1", port)) as plain:  # plain HTTP gets nothing
        plain.settimeout(5)
        plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = plain.recv(1000)
        except ConnectionResetError:
            answer = b""
        assert answer == b""

    prometheus_port = free_port()
    target = f"127.0.0.1:{port}"
    tls = {"ca_file": str(tmp_path / "ca.crt")}
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "good",
                "scheme": "https",
                "tls_config": tls,
                "basic_auth": {"username": "prometheus", "password": PASSWORD},
                "static_configs": [{"targets": [target]}],
            },
            {
                "job_name": "wrong_password",
                "scheme": "https",
                "tls_config": tls,
                "basic_auth": {"username": "prometheus", "password": "nope"},
                "static_configs": [{"targets": [target]}],
            },
            {"job_name": "plain", "scheme": "http", "static_configs": [{"targets": [target]}]},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = subprocess.Popen(
        [
            require_binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def targets() -> dict | None:
            found = {t["labels"]["job"]: t for t in api(prometheus_port, "/api/v1/targets")["data"]["activeTargets"]}
            return found if all(t["health"] != "unknown" for t in found.values()) and len(found) == 3 else None

        found = wait_until(targets, timeout=60, message="every target scraped once")
        assert found["good"]["health"] == "up", found["good"]
        assert found["wrong_password"]["health"] == "down" and "401" in found["wrong_password"]["lastError"]
        assert found["plain"]["health"] == "down"
        result = wait_until(
            lambda: api(prometheus_port, "/api/v1/query?query=x_total%7Bstructure%3D%22S000007%22%7D")["data"][
                "result"
            ],
            timeout=30,
            message="a sample scraped over TLS",
        )
        assert float(result[0]["value"][1]) == 7
    finally:
        prometheus.terminate()
        prometheus.wait(10)


def test_check_config_names_what_is_wrong_in_the_web_config_and_the_dsn(tmp_path):
    config = write_config(tmp_path / "config.yml", "postgresql://u@127.0.0.1/db")
    good = web_config_file(tmp_path)
    ok = run_cli("check-config", "--config", str(config), "--web.config.file", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "TLS on, basic auth on" in ok.stdout
    cases = {
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n": "tls_server_config.cert_file",
        "basic_auth_users:\n  prometheus: plaintext\n": "basic_auth_users.prometheus",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS99\n": "tls_server_config.min_version",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n": "tls_server_config.client_ca_file",
        "basic_auth: {}\n": "basic_auth: unknown key",
        "tls_server_config: [\n": "not valid YAML",
    }
    for text, expected in cases.items():
        bad = tmp_path / "bad-web.yml"
        bad.write_text(text)
        result = run_cli("check-config", "--config", str(config), "--web.config.file", str(bad))
        assert result.returncode == 2, (text, result.stdout, result.stderr)
        assert expected in result.stderr and str(bad) in result.stderr, (text, result.stderr)
        assert "Traceback" not in result.stderr
    malformed = write_config(tmp_path / "malformed.yml", "host=localhost port")
    result = run_cli("check-config", "--config", str(malformed))
    assert result.returncode == 2 and "source.dsn" in result.stderr and 'missing "="' in result.stderr, result.stderr


def serve_with_web_config(source_dsn: str, tmp_path: Path) -> tuple[Path, int, subprocess.Popen, ssl.SSLContext]:
    """``ent-exporter serve --web.config.file`` as a real process (TLS and basic auth): the web config's
    path, the port, the process and a client context trusting the test's CA."""
    web = web_config_file(tmp_path)
    port = free_port()
    config = write_config(tmp_path / "config.yml", source_dsn, listen={"address": "127.0.0.1", "port": port})
    serve = subprocess.Popen(
        [sys.executable, "-m", "ent_exporter.cli", "serve", "--config", str(config), "--web.config.file", str(web)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return web, port, serve, ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))


def test_serve_takes_the_web_config_file(source_dsn, tmp_path):
    web, port, serve, context = serve_with_web_config(source_dsn, tmp_path)
    auth = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()

    def get(headers: dict) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()

    try:
        status, body = wait_until(lambda: get({"Authorization": auth}), timeout=30, message="https answers")
        assert status == 200 and b"ent_exporter_source_up" in body
        assert get({})[0] == 401
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=30)
    assert "serving https://127.0.0.1" in err, err
    assert "Traceback" not in err


# -- mTLS, cipher suites, curves, headers: applied or refused ------------------------------


def tls_get(port: int, context: ssl.SSLContext, headers: dict | None = None) -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request("GET", "/healthz", headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, TimeoutError)


@pytest.mark.parametrize("auth_type", ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"])
def test_client_allowed_sans_is_enforced(server, tmp_path, auth_type):
    import ipaddress

    from cryptography import x509

    path = web_config_file(
        tmp_path,
        tls={
            "client_auth_type": auth_type,
            "client_ca_file": "ca.crt",
            "client_allowed_sans": ["scraper.example", "10.1.2.3", "spiffe://ent/prometheus"],
        },
    )
    (tmp_path / "web.yml").write_text(path.read_text().replace("basic_auth_users", "unused_users"))
    text = yaml.safe_load(path.read_text())
    del text["unused_users"]
    path.write_text(yaml.safe_dump(text))
    port = server(web=load_web_config(path)).port
    clients = {
        "dns": [x509.DNSName("scraper.example")],
        "ip": [x509.IPAddress(ipaddress.ip_address("10.1.2.3"))],
        "uri": [x509.DNSName("x.example"), x509.UniformResourceIdentifier("spiffe://ent/prometheus")],
        "other": [x509.DNSName("intruder.example"), x509.RFC822Name("scraper.example@x")],
        "none": [x509.DNSName("scraper.example.evil")],
    }
    statuses = {}
    for stem, sans in clients.items():
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        context.load_cert_chain(*make_client_certificate(tmp_path, stem, sans))
        try:
            statuses[stem] = tls_get(port, context)
        except REFUSED:
            statuses[stem] = "refused"
    no_certificate = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    try:
        statuses["no certificate"] = tls_get(port, no_certificate)
    except REFUSED:
        statuses["no certificate"] = "refused"
    assert statuses == {
        "dns": 200,
        "ip": 200,
        "uri": 200,
        "other": "refused",
        "none": "refused",
        "no certificate": "refused",
    }


def test_cipher_suites_and_curve_are_applied(server, tmp_path):
    ciphers = web_config_file(
        tmp_path / "ciphers",
        tls={
            "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
            "prefer_server_cipher_suites": True,
        },
    )
    web = load_web_config(ciphers)
    assert web.ssl_context is not None and web.ssl_context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    port = server(web=web).port
    # (TLS 1.3 carries the curve apart from the certificate's: the curve is tried there.)
    curve = web_config_file(tmp_path / "curve", tls={"min_version": "TLS13", "curve_preferences": ["CurveP384"]})
    curve_port = server(web=load_web_config(curve)).port
    auth = {"Authorization": basic("prometheus", PASSWORD)}

    def client(directory: Path, ciphers: str | None = None, curve: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
        if ciphers:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(ciphers)
        if curve:
            context.set_ecdh_curve(curve)
        return context

    assert tls_get(port, client(tmp_path / "ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"), auth) == 200
    with pytest.raises(ssl.SSLError):  # suites the list leaves out
        tls_get(port, client(tmp_path / "ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"), auth)
    assert tls_get(curve_port, client(tmp_path / "curve", curve="secp384r1"), auth) == 200
    with pytest.raises(ssl.SSLError):  # a curve other than CurveP384
        tls_get(curve_port, client(tmp_path / "curve", curve="prime256v1"), auth)


def load_error(tmp_path: Path, text: str) -> str:
    make_certificates(tmp_path)
    path = tmp_path / "bad-web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_web_config(path)
    assert str(path) in str(error.value)
    return str(error.value).split("\n", 1)[1].strip()


TLS_HEAD = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            TLS_HEAD + "  client_allowed_sans: [scraper.example]\n",
            "tls_server_config.client_allowed_sans: needs a verified client certificate: set client_auth_type"
            " to RequireAndVerifyClientCert (or VerifyClientCertIfGiven) and client_ca_file",
        ),
        (
            TLS_HEAD + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_FANCY_WITH_NOTHING]\n",
            "tls_server_config.cipher_suites: unknown cipher suite TLS_FANCY_WITH_NOTHING (Go's names, e.g."
            " TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
        ),
        (
            TLS_HEAD + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "tls_server_config.cipher_suites: no TLS 1.0-1.2 suite listed: list one, or set min_version: TLS13",
        ),
        (
            TLS_HEAD + "  curve_preferences: [CurveP256, X25519]\n",
            "tls_server_config.curve_preferences: Python's ssl sets one curve, not an order of several: list"
            " exactly one",
        ),
        (
            TLS_HEAD + "  curve_preferences: [P256]\n",
            "tls_server_config.curve_preferences: unknown curve P256 (known: CurveP256, CurveP384, CurveP521, X25519)",
        ),
        (
            'http_server_config:\n  headers:\n    X-Frame-Options: "deny\\r\\nSet-Cookie: session=stolen"\n',
            "http_server_config.headers.X-Frame-Options: the value holds a line break or another control"
            " character (it would inject headers)",
        ),
        (
            'http_server_config:\n  headers:\n    "X-Bad\\nName": "x"\n',
            "http_server_config.headers.X-Bad\nName: not a valid header name (letters, digits and"
            " !#$%&'*+-.^_`|~ only)",
        ),
        (
            "http_server_config:\n  headers:\n    Content-Length: '0'\n",
            "http_server_config.headers.Content-Length: set by the server itself for each response",
        ),
    ],
)
def test_what_cannot_be_applied_is_refused_at_load(tmp_path, text, message):
    assert load_error(tmp_path, text) == message


def test_basic_auth_without_tls_is_warned_about_and_headers_are_sent(server, tmp_path, caplog):
    path = web_config_file(tmp_path, tls=False, http_server_config={"headers": {"X-Frame-Options": "deny"}})
    caplog.set_level(logging.WARNING, "ent_exporter.web.config")
    web = load_web_config(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: basic_auth_users without tls_server_config: passwords travel in clear over HTTP"
    ]
    port = server(web=web).port
    refused = request(port)
    assert refused.status == 401 and refused.headers["X-Frame-Options"] == "deny"
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="ent-exporter", charset="UTF-8"'
    assert request(port, Authorization=basic("prometheus", PASSWORD)).headers["X-Frame-Options"] == "deny"
    config = write_config(tmp_path / "config.yml", "postgresql://u@127.0.0.1/db")
    checked = run_cli("check-config", "--config", str(config), "--web.config.file", str(path))
    assert checked.returncode == 0, checked.stderr
    assert "basic_auth_users without tls_server_config: passwords travel in clear over HTTP" in checked.stderr


def test_unknown_users_cost_the_costliest_hash_and_valid_checks_are_cached(tmp_path):
    from ent_exporter.web.config import WebConfig, _cost

    cheap = bcrypt.hashpw(b"cheap", bcrypt.gensalt(4))
    dear = bcrypt.hashpw(b"dear", bcrypt.gensalt(12))
    web = WebConfig(None, {"cheap": cheap, "dear": dear}, {})
    assert _cost(web._dummy) == 12 and bcrypt.checkpw(b"-", web._dummy)

    def timed(header: str) -> tuple[bool, float]:
        started = time.monotonic()
        ok = web.verify(header)
        return ok, time.monotonic() - started

    known_ok, known = timed(basic("dear", "wrong"))
    unknown_ok, unknown = timed(basic("nobody", "wrong"))
    assert not known_ok and not unknown_ok
    assert unknown > 0.5 * known  # the same cost (12): same order of time
    assert not web.cached(basic("dear", "dear"))
    assert web.verify(basic("dear", "dear")) and web.cached(basic("dear", "dear"))
    assert not web.cached(basic("dear", "wrong"))  # failures are not cached


def test_password_checks_beyond_the_bound_are_answered_429_at_once(server, tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": {"p": bcrypt.hashpw(b"x", bcrypt.gensalt(13)).decode()}}))
    port = server(web=load_web_config(path), max_pending_bcrypt=1).port
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    wrong = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {basic('p', 'y')}\r\n\r\n".encode()
    for client in clients:
        client.sendall(wrong)
    import select

    started = time.monotonic()
    answers = []
    waiting = list(clients)
    while waiting and time.monotonic() - started < 10:
        for client in select.select(waiting, [], [], 10)[0]:
            answers.append((client.recv(100).split(b"\r\n")[0], time.monotonic() - started))
            waiting.remove(client)
            client.close()
    statuses = sorted(status for status, _ in answers)
    assert statuses == [
        b"HTTP/1.1 401 Unauthorized",
        b"HTTP/1.1 429 Too Many Requests",
        b"HTTP/1.1 429 Too Many Requests",
    ]
    assert all(elapsed < 0.3 for status, elapsed in answers if b"429" in status)


def test_sighup_rereads_the_web_config_and_keeps_it_when_the_new_one_is_invalid(source_dsn, tmp_path):
    web, port, serve, context = serve_with_web_config(source_dsn, tmp_path)

    def status(user: str, password: str) -> int:
        return tls_get(port, context, {"Authorization": basic(user, password)})

    try:
        assert wait_until(lambda: status("prometheus", PASSWORD) == 200, timeout=30, message="https answers")
        assert status("grafana", "g-pass") == 401
        document = yaml.safe_load(web.read_text())
        document["basic_auth_users"]["grafana"] = bcrypt.hashpw(b"g-pass", bcrypt.gensalt(10)).decode()
        web.write_text(yaml.safe_dump(document))
        os.kill(serve.pid, signal.SIGHUP)
        assert wait_until(lambda: status("grafana", "g-pass") == 200, timeout=10, message="the new user admitted")
        assert status("prometheus", PASSWORD) == 200
        web.write_text("basic_auth_users:\n  grafana: plaintext\n")  # invalid: the one in use stays
        os.kill(serve.pid, signal.SIGHUP)
        time.sleep(1.5)
        assert serve.poll() is None
        assert status("grafana", "g-pass") == 200 and status("prometheus", PASSWORD) == 200
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=30)
    assert f"SIGHUP: {web} re-read: users added: grafana; certificate and TLS settings re-read\n" in err, err
    assert (
        f"ERROR ent_exporter.app: SIGHUP: {web}: invalid web configuration; basic_auth_users.grafana: not a bcrypt"
        " hash" in err
    ), err
    assert "the web configuration in use is kept" in err and "Traceback" not in err


def test_a_reload_says_what_changed(tmp_path):
    from ent_exporter.web.config import WebConfig, changes

    one, two = bcrypt.hashpw(b"1", bcrypt.gensalt(4)), bcrypt.hashpw(b"2", bcrypt.gensalt(4))
    old = WebConfig(None, {"a": one, "b": one}, {"X-Frame-Options": "deny"})
    new = WebConfig(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), {"b": two, "c": one}, {})
    assert changes(old, new) == [
        "TLS on",
        "users added: c",
        "users removed: a",
        "passwords changed: b",
        "headers: none",
    ]
    assert changes(new, old) == [
        "TLS off",
        "users added: a",
        "users removed: c",
        "passwords changed: b",
        "headers: X-Frame-Options",
    ]
    assert changes(old, WebConfig(None, {"a": one, "b": one}, {"X-Frame-Options": "deny"})) == []
    # The checks cached for a user whose hash is unchanged are kept, not the others'.
    old.verify(basic("a", "1")), old.verify(basic("b", "1"))
    kept = WebConfig(None, {"a": one, "b": two}, {})
    kept.adopt_cache(old)
    assert kept.cached(basic("a", "1")) and not kept.cached(basic("b", "1"))
