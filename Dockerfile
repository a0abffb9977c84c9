# The base is a build argument: Python 3.11 on Debian bookworm. `make image` uses the official image
# and, where no registry can be reached, a stand-in built from Debian's packages
# (scripts/image.sh); nothing below depends on which one it got.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: install the locked dependencies into a self-contained venv ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# strip, for the wheels' shared libraries below; in this stage only (no build tool ships).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
# Every transitive dependency at its locked version, each file checked against its hash (`make lock`);
# wheels only, so a dependency that would need a compiler fails here rather than in production.
# Then what runs nothing: setuptools (venv's, no dependency needs it) and the debugging symbols of
# the wheels' libraries (SQLAlchemy's carry 9 MB); pip stays, for `pip check`.
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary :all: -r /tmp/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes setuptools \
    && find /opt/venv -type f -name '*.so*' -exec strip --strip-unneeded {} +

# --- runtime: no build tools, non-root ---
FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
LABEL org.opencontainers.image.title="saas" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    FLASK_APP=wsgi.py
WORKDIR /app
# Code stays root-owned (read-only to the app); compose and Kubernetes run it on a read-only root
# filesystem with a tmpfs on /tmp. instance/ is for the embedded SQLite default of a plain `docker run`.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --no-log-init app \
    && mkdir /app/instance \
    && chown app:app /app/instance
COPY --from=builder /opt/venv /opt/venv
# Only what the app runs (.dockerignore lists it): no tests, tooling, clients or secrets.
COPY . .
# Numeric, so runtimes (e.g. Kubernetes runAsNonRoot) can verify it is not root.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
