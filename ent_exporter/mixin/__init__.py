"""Grafana side of ent-exporter's monitoring bundle (dashboards as code; see grafana/dashboards/)."""
