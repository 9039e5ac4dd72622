# Open-Dispatch, the dispatcher (not a sprite). Build: docker build -t open-dispatch .
# On Fly: `fly deploy` builds this with fly.toml (docs/deploy-fly.md, step 4).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# git: local sprites and `opendispatch demo` clone with it; the Fly backend does not need it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY sidecar ./sidecar
RUN pip install ".[all]"

RUN useradd --create-home --uid 10001 dispatch \
    && mkdir -p /data && chown dispatch:dispatch /data
USER dispatch
WORKDIR /home/dispatch

# Listen on every interface, IPv6 included: Fly's proxy health-checks over IPv4 and sprites
# reach us over the private IPv6 network (<app>.internal).
ENV WEBHOOK_PORT=8080 \
    OPENDISPATCH_WEBHOOK_HOST="[::]" \
    OPENDISPATCH_DB=/data/jobs.db

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('WEBHOOK_PORT', '8080'), timeout=4)"]

# SIGTERM (fly.toml kill_signal) destroys every live sprite before the process exits.
STOPSIGNAL SIGTERM
CMD ["opendispatch", "serve"]
