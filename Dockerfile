# settee: `settee serve` on 0.0.0.0:5984, data in the /data volume, configured by SETTEE_*.
# Binding 0.0.0.0 needs an admin password: docker run -e SETTEE_ADMIN_PASSWORD=... settee
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/settee

# Dependencies in their own layer, read from pyproject.toml: rebuilt only when it changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt \
    && rm requirements.txt

# The code: settee itself, without dependencies (already installed above).
COPY README.md ./
COPY server ./server
COPY store ./store
COPY views ./views
COPY client ./client
RUN pip install --no-cache-dir --no-deps . \
    && groupadd --system --gid 5984 settee \
    && useradd --system --uid 5984 --gid 5984 --home-dir /data --shell /usr/sbin/nologin settee \
    && mkdir -p /data \
    && chown 5984:5984 /data

USER 5984:5984
VOLUME ["/data"]
ENV SETTEE_BIND=0.0.0.0:5984 \
    SETTEE_DATA_DIR=/data
EXPOSE 5984

# python -c, not curl: the slim image has no curl. The port follows SETTEE_BIND.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('SETTEE_BIND', '0.0.0.0:5984').rsplit(':', 1)[-1]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/_up', timeout=4).status == 200 else 1)"]

CMD ["settee", "serve"]
