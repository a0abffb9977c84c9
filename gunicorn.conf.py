"""Gunicorn settings, read from the environment through ``config.ServerSettings``."""
import os
import shutil

# Prometheus multiprocess mode: each worker writes its samples here and /metrics sums them.
# Set in the master before workers fork, so every worker inherits it, and before anything
# imports prometheus_client, which picks its storage when imported.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"saas-prometheus-{os.getpid()}")
)

import config as _config  # noqa: E402
from gunicorn import glogging as _glogging  # noqa: E402
from saas.core import logging as _logging  # noqa: E402
from saas.web import server_errors as _server_errors  # noqa: E402

# Names without a leading underscore are gunicorn settings (a test holds them to gunicorn's list).
_settings = _config.ServerSettings.from_env()

bind = _settings.bind_address

# Threads let one worker overlap I/O waits (DB, Redis, Stripe) without an async stack.
worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads

timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive

max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter

# The worker heartbeat file is touched constantly; keep it off a (possibly overlay) disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# No control socket (gunicornc): nothing here uses it, and its default place, $HOME/.gunicorn, is
# read-only in the containers (the image test caught gunicorn failing to write it).
control_socket_disable = True

# The app logs each request itself (structured); gunicorn's access log would duplicate it.
accesslog = _settings.accesslog


class _AccessLineOnDemand(_glogging.Logger):
    """gunicorn's logger, which builds an access line only when GUNICORN_ACCESSLOG asks for one.
    With a logging configuration (``logconfig_dict``, below) gunicorn's own builds one for every
    request and the level drops it: a twentieth of ``GET /users/me``'s CPU (bench/RESULTS.md)."""

    def setup(self, cfg):
        super().setup(cfg)
        self.access_lines = bool(cfg.accesslog)

    def access(self, resp, req, environ, request_time):
        if self.access_lines:
            super().access(resp, req, environ, request_time)


logger_class = _AccessLineOnDemand
errorlog = "-"
loglevel = _settings.loglevel

forwarded_allow_ips = _settings.forwarded_allow_ips

# Size limits are the proxy's job (deploy/nginx/nginx.conf: 32 KiB per request or header line):
# gunicorn's must not be tighter, or a valid request the proxy let through (a 2,048-character
# return_url of non-ASCII characters is ~20 KiB once percent-encoded) would be refused here.
# gunicorn caps a line at 8,190 bytes unless told 0 (no limit of its own); run it behind a proxy.
limit_request_line = 0
limit_request_field_size = 32768
limit_request_fields = 200

# What gunicorn still refuses itself (a malformed request) is answered in the JSON envelope.
_server_errors.install()

# gunicorn's own lines in the same JSON shape as the app's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": _logging.FORMATTER_CLASS, "fmt": _logging.JSON_FORMAT, "rename_fields": _logging.RENAMED_FIELDS}
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(), "propagate": False},
        # The app already logs every request with its id; gunicorn's access line only on demand.
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO" if accesslog else "WARNING", "propagate": False},
    },
}


def on_starting(server):
    """Start each run with an empty metrics directory (stale files would inflate counters)."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the metrics directory (its counters stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
