# tracker: link shortener and click/conversion tracker for SMS campaigns.
#
#   docker build -t tracker .
#   docker run -p 8000:8000 -v tracker-data:/data \
#       -e TRACKER_BASE_URL=https://go.example.com tracker
#
# The first start on an empty volume migrates the database and prints a one-time admin key
# to the container log. Set TRACKER_BASE_URL to the public address short links should use.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Install from the project's own files only (see .dockerignore). The wheel carries
# migrations/ as tracker/migrations, so the source copy is removed once installed.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tracker/ tracker/
COPY migrations/ migrations/
RUN pip install --no-cache-dir . \
    && groupadd --system --gid 10001 tracker \
    && useradd --system --uid 10001 --gid tracker --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tracker \
    && mkdir /data \
    && chown tracker:tracker /data \
    && rm -rf /src

WORKDIR /data
# Numeric, so orchestrators can verify it is not root (runAsNonRoot).
USER 10001:10001

ENV TRACKER_DATABASE_URL=sqlite:////data/tracker.db \
    TRACKER_HOST=0.0.0.0 \
    TRACKER_PORT=8000 \
    TRACKER_WORKERS=1
VOLUME ["/data"]
EXPOSE 8000

# The slim image has no curl: ask /healthz with the standard library (proxies ignored).
# urlopen raises on a refused connection, a timeout or a non-2xx answer, so python exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('TRACKER_PORT', '8000'), timeout=3)"]

CMD ["tracker", "serve"]
