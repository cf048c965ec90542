"""The HTTP endpoint on an untrusted network: timeouts, a connection cap, HEAD, Accept-Encoding
with q-values, quiet client aborts, no version disclosure; TLS and basic auth from an
exporter-toolkit web configuration, scraped by a real Prometheus."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
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

from ent_exporter.engine.collector import Family, Kind
from ent_exporter.engine.exposition import Exposition
from ent_exporter.web.config import load_web_config
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


def test_connections_beyond_the_cap_are_refused_and_scrapes_stay_fast(server):
    port = server(read_timeout=5, max_connections=3).port
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            extra.settimeout(5)
            assert extra.recv(100).startswith(b"HTTP/1.1 503")
        held.pop().close()
        time.sleep(0.2)
        started = time.monotonic()
        assert request(port).status == 200
        assert time.monotonic() - started < 1
    finally:
        for client in held:
            client.close()


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


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, generated here."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

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
    return paths


PASSWORD = "s3cret-scraper"


def web_config_file(directory: Path) -> Path:
    make_certificates(directory)
    path = directory / "web.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "min_version": "TLS12"},
                "basic_auth_users": {"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()},
            }
        )
    )
    return path


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

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

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


def test_serve_takes_the_web_config_file(source_dsn, tmp_path):
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
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
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
