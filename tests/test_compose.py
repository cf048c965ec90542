"""docker-compose.yml, checked statically (no Docker engine needed): every mounted file
exists, and the service names and ports agree with prometheus.yml, the Grafana
provisioning and the Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SERVICES = {"exporter", "prometheus", "alertmanager", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def prometheus_config() -> dict:
    return yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (not named volumes)."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            mounts.append((source, target))
    return mounts


def container_ports(service: dict) -> set[int]:
    """Ports the service's container listens on, from `ports` (last part) and `expose`."""
    ports = set()
    for entry in service.get("ports", []):
        text = str(entry["target"] if isinstance(entry, dict) else entry)
        ports.add(int(text.split(":")[-1].split("/")[0]))
    ports |= {int(str(p).split("/")[0]) for p in service.get("expose", [])}
    return ports


def container_path_of(service: dict, host_path: str) -> str:
    for source, target in bind_mounts(service):
        if (REPO / source).resolve() == (REPO / host_path).resolve():
            return target
    raise AssertionError(f"{host_path} is not mounted")


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def test_the_whole_stack_is_there(compose):
    assert SERVICES <= set(compose["services"])


def test_every_bind_mounted_path_exists(compose):
    missing = [
        f"{name}: {source}"
        for name, service in compose["services"].items()
        for source, _ in bind_mounts(service)
        if not (REPO / source).exists()
    ]
    assert not missing, missing
    # Named volumes are declared.
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if isinstance(volume, str) and not source.startswith((".", "/", "~")):
                assert source in (compose.get("volumes") or {}), f"{name}: undeclared volume {source}"


def test_prometheus_scrapes_the_exporter_service(compose, prometheus_config):
    job = next(j for j in prometheus_config["scrape_configs"] if j["job_name"] == "ent-exporter")
    (target,) = [t for c in job["static_configs"] for t in c["targets"]]
    host, port = host_port(target)
    assert host in compose["services"], f"scrape target {target}: no service {host}"
    exporter = compose["services"][host]
    assert port in container_ports(exporter)
    # The exporter really listens there: its command's --port (9877 by default).
    command = exporter.get("command", [])
    command = command.split() if isinstance(command, str) else command
    listen = int(command[command.index("--port") + 1]) if "--port" in command else 9877
    assert listen == port


def test_exporter_is_built_from_the_dockerfile(compose):
    exporter = compose["services"]["exporter"]
    build = exporter["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    text = (REPO / context / dockerfile).read_text()
    assert re.search(r"^EXPOSE 9877\b", text, re.M)
    assert re.search(r'^ENTRYPOINT \["ent-exporter"\]', text, re.M)
    command = exporter["command"]
    assert (command.split() if isinstance(command, str) else command)[0] in ("demo", "serve")
    # Everything `pip install .` needs is in the build context (.dockerignore is an allow-list).
    ignore = (REPO / context / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "ent_exporter/"):
        assert f"!{needed}" in ignore, needed
        assert (REPO / context / needed).exists()
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in copied.split():
            assert (REPO / context / path).exists(), path


def test_prometheus_service_mounts_its_config_and_rules(compose, prometheus_config):
    prometheus = compose["services"]["prometheus"]
    config_path = container_path_of(prometheus, "./prometheus/prometheus.yml")
    assert f"--config.file={config_path}" in prometheus["command"]
    rules_dir = container_path_of(prometheus, "./prometheus/rules")
    # rule_files are relative to the config file: they must land in the mounted rules directory.
    for pattern in prometheus_config["rule_files"]:
        resolved = pattern if pattern.startswith("/") else str(Path(config_path).parent / pattern)
        assert resolved.startswith(rules_dir + "/"), (pattern, rules_dir)
        assert list((REPO / "prometheus").glob(pattern)), f"{pattern} matches no rule file"


def test_prometheus_sends_alerts_to_the_alertmanager_service(compose, prometheus_config):
    targets = [
        t for a in prometheus_config["alerting"]["alertmanagers"] for c in a["static_configs"] for t in c["targets"]
    ]
    assert targets
    for target in targets:
        host, port = host_port(target)
        assert host in compose["services"], target
        assert port in container_ports(compose["services"][host])
    alertmanager = compose["services"]["alertmanager"]
    config_path = container_path_of(alertmanager, "./prometheus/alertmanager.yml")
    assert f"--config.file={config_path}" in alertmanager["command"]


def test_grafana_datasources_point_at_the_services(compose):
    grafana = compose["services"]["grafana"]
    provisioning = container_path_of(grafana, "./grafana/provisioning/datasources")
    assert provisioning == "/etc/grafana/provisioning/datasources"
    datasources = {}
    for path in (REPO / "grafana/provisioning/datasources").glob("*.yml"):
        datasources.update({d["uid"]: d for d in yaml.safe_load(path.read_text())["datasources"]})
    prometheus = datasources["ent-prometheus"]
    assert prometheus["type"] == "prometheus"
    url = urlparse(prometheus["url"])
    assert url.hostname == "prometheus" and url.hostname in compose["services"]
    assert url.port in container_ports(compose["services"]["prometheus"])
    # $__rate_interval is computed from this: it must be the exporter's scrape interval.
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "ent-exporter")
    assert prometheus["jsonData"]["timeInterval"] == job.get("scrape_interval", config["global"]["scrape_interval"])
    for uid, datasource in datasources.items():
        url = urlparse(datasource["url"])
        assert url.hostname in compose["services"], uid
        assert url.port in container_ports(compose["services"][url.hostname]), uid


def test_grafana_loads_the_dashboards_into_the_ent_folder(compose):
    grafana = compose["services"]["grafana"]
    assert container_path_of(grafana, "./grafana/provisioning/dashboards") == "/etc/grafana/provisioning/dashboards"
    dashboards_dir = container_path_of(grafana, "./grafana/dashboards")
    (provider_file,) = (REPO / "grafana/provisioning/dashboards").glob("*.yml")
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["folder"] == "ENT" and provider["type"] == "file"
    # One language: the directory named by ENT_DASHBOARDS_LANGUAGE, French unless the shell says otherwise.
    assert provider["options"]["path"] == dashboards_dir + "/$ENT_DASHBOARDS_LANGUAGE"
    environment = grafana.get("environment", {})
    assert environment["ENT_DASHBOARDS_LANGUAGE"] == "${ENT_DASHBOARDS_LANGUAGE:-fr}"
    home = environment.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home.startswith(dashboards_dir + "/")
        for lang in ("fr", "en"):
            resolved = home.replace("${ENT_DASHBOARDS_LANGUAGE:-fr}", lang)
            assert (REPO / "grafana/dashboards" / resolved[len(dashboards_dir) + 1 :]).exists(), resolved
    for lang in ("fr", "en"):
        assert list((REPO / "grafana/dashboards" / lang).glob("*.json")), f"no generated {lang} dashboard to load"


def test_published_ports_are_distinct(compose):
    published = []
    for service in compose["services"].values():
        for entry in service.get("ports", []):
            parts = str(entry).split(":")
            if len(parts) > 1:
                published.append(tuple(parts[:-1]))
    assert len(published) == len(set(published)), published


def test_the_demo_listens_beyond_its_container_loopback(compose):
    """The demo binds 127.0.0.1 by default; in a container Prometheus reaches it only on 0.0.0.0."""
    command = compose["services"]["exporter"]["command"]
    command = command.split() if isinstance(command, str) else command
    if command[0] == "demo":
        assert command[command.index("--address") + 1] == "0.0.0.0"


def test_health_checks_liveness_in_the_image_and_readiness_in_compose(compose):
    dockerfile = (REPO / "Dockerfile").read_text()
    check = dockerfile[dockerfile.index("\nHEALTHCHECK") :].split("\nENTRYPOINT")[0]
    assert "/healthz" in check and "/readyz" not in check
    test = " ".join(compose["services"]["exporter"]["healthcheck"]["test"])
    assert "/readyz" in test and ":9877/" in test


def test_prometheus_keeps_a_year_of_history_and_a_month_to_spare(compose):
    """A month compared with the same month a year before needs at least 400 days (issue 15)."""
    command = compose["services"]["prometheus"]["command"]
    (retention,) = [c.split("=", 1)[1] for c in command if c.startswith("--storage.tsdb.retention.time=")]
    number, unit = re.fullmatch(r"(\d+)([dwy])", retention).groups()
    assert int(number) * {"d": 1, "w": 7, "y": 365}[unit] >= 400
    # The example configuration says so where a user of prometheus.yml alone looks.
    assert "--storage.tsdb.retention.time=400d" in (REPO / "prometheus" / "prometheus.yml").read_text()
