# b24-bridge in a container: slim Python, a non-root user, the journal on a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/b24-bridge
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install . && useradd --system --home-dir /var/lib/b24-bridge --create-home --uid 10001 b24bridge

USER b24bridge
VOLUME ["/var/lib/b24-bridge"]
WORKDIR /var/lib/b24-bridge
# The config is mounted at /etc/b24-bridge/bridge.toml; set [journal] path = "/var/lib/b24-bridge/journal.db"
# and [http] listen = "0.0.0.0:8480" so Bitrix24's event posts reach the daemon (with http.status_token for /status).
EXPOSE 8480
# The health check asks /livez on the port of the config's http.listen: only a stuck process fails it, never a PBX
# reconnect or a Bitrix24 backlog (/readyz tells whether calls can be taken; /healthz has the details).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "bridge.ops.probe", "--config", "/etc/b24-bridge/bridge.toml", "livez"]
# On SIGTERM the daemon mirrors the calls in progress for up to 20 s, gives Bitrix24 10 s more, then exits: stop it
# with a longer timeout than Docker's default 10 s, e.g. `docker run --stop-timeout 45` or, in compose,
# `stop_grace_period: 45s` (as systemd's TimeoutStopSec=45s), or calls in progress are cut off.
STOPSIGNAL SIGTERM
ENTRYPOINT ["b24-bridge"]
CMD ["run", "--config", "/etc/b24-bridge/bridge.toml"]
