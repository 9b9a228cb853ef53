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
# and [http] listen = "0.0.0.0:8480" so the health check and Bitrix24's event posts reach the daemon.
EXPOSE 8480
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8480/healthz', timeout=4); sys.exit(0)"
ENTRYPOINT ["b24-bridge"]
CMD ["run", "--config", "/etc/b24-bridge/bridge.toml"]
