"""The HTTP side: the /metrics, /healthz and /readyz server (``server``) and its web configuration
file, TLS and basic auth in exporter-toolkit's format (``config``)."""
