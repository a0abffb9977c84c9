"""Gunicorn settings; every value can be overridden from the environment."""

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _cpus() -> int:
    # Respect CPU pinning (containers, taskset) instead of the host's core count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT') or 8000}"

# Threads let one worker overlap I/O waits (DB, Redis, Stripe) without an async stack.
worker_class = "gthread"
# One worker per core, each with 8 threads: measured best for this app on PostgreSQL (see
# bench/RESULTS.md); the classic 2*cores+1 is advice for sync workers, and more processes here
# only add context switches and idle DB pools.
workers = _int("GUNICORN_WORKERS", max(2, _cpus()))
threads = _int("GUNICORN_THREADS", 8)

timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Recycling workers bounds slow memory leaks; 0 disables it.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)

# The worker heartbeat file is touched constantly; keep it off a (possibly overlay) disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# The app logs each request itself (structured); gunicorn's access log would duplicate it.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")

# Only trust X-Forwarded-* from these proxies.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Prometheus multiprocess mode: each worker writes its samples here and /metrics sums them.
# Set in the master before workers fork, so every worker inherits it.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"saas-prometheus-{os.getpid()}")
)

# gunicorn's own lines in the same JSON shape as the app's.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
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
    import shutil

    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
