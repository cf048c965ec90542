# ent-exporter: the exporter as a container image.
#   docker build -t ent-exporter .
#   docker run -p 9877:9877 ent-exporter demo --address 0.0.0.0   # synthetic ENT, embedded PostgreSQL
#   docker run -p 9877:9877 -v $PWD/config.yml:/etc/ent-exporter/config.yml:ro ent-exporter   # production
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ent_exporter ./ent_exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[demo,reports]'

FROM python:3.11-slim
# tzdata: the platform's timezone (default Europe/Paris) for calendar periods and hours of day.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/ent-exporter --uid 10001 --shell /usr/sbin/nologin ent-exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Not root: the demo's embedded PostgreSQL then runs as this user (as root it would create one).
USER ent-exporter
WORKDIR /var/lib/ent-exporter
# The demo's data and the exporter's state (watermarks, last results) live here: mount a volume.
VOLUME ["/var/lib/ent-exporter"]
EXPOSE 9877
# Liveness: the process answers. Not /readyz: a database outage is not cured by a restart
# (docker-compose.yml checks readiness for `docker compose ps`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9877/healthz', timeout=4)"]
ENTRYPOINT ["ent-exporter"]
CMD ["serve", "--config", "/etc/ent-exporter/config.yml"]
