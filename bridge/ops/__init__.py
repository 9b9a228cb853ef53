"""The operator-facing surface: the HTTP server (health, metrics, status page, Bitrix24 events), systemd
notify, the container probe, GC tuning."""
