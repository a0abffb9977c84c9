"""Background jobs on RQ, or inline when the app runs without Redis.

Workers are the plain ``rq worker`` command; a job builds its own app context with
``job_app_context`` because RQ imports and calls the function outside any Flask app.
"""
import functools
import logging
import os

from flask import current_app, has_app_context
from rq import Queue, Retry, Worker

from saas.redis_client import get_redis

log = logging.getLogger(__name__)

# Waits between retries, in seconds: a Stripe outage of a few minutes heals by itself.
DEFAULT_BACKOFF = [10, 30, 60, 300, 900]


@functools.cache
def _worker_app():
    from saas import create_app

    return create_app()


def job_app_context(func):
    """Run ``func`` inside an app context, creating the app once per worker process."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            return func(*args, **kwargs)
        with _worker_app().app_context():
            return func(*args, **kwargs)

    return wrapper


def get_queue():
    return Queue(current_app.config["RQ_QUEUE"], connection=get_redis())


def enqueue(func, *args, backoff=DEFAULT_BACKOFF, job_id=None, job_timeout=None):
    """Queue ``func(*args)`` with retries; run it now when there is no Redis.

    Returns the RQ job, or None when it ran inline. An inline failure is logged, not raised:
    the callers' work (a signup, a webhook) must not fail because a side job did.
    """
    if get_redis() is None:
        try:
            func(*args)
        except Exception:
            log.exception("inline job %s failed", func.__qualname__)
        return None
    retry = Retry(max=len(backoff), interval=backoff) if backoff else None
    return get_queue().enqueue(func, *args, retry=retry, job_id=job_id, job_timeout=job_timeout)


class JsonLogWorker(Worker):
    """``rq worker --worker-class saas.jobs.JsonLogWorker``: the worker's own lines (job started,
    finished, failed) in the same JSON as the app's, instead of RQ's coloured text."""

    def __init__(self, *args, **kwargs):
        from saas.logging import configure_json_logging

        configure_json_logging(os.environ.get("LOG_LEVEL") or "INFO")
        for name in ("rq.worker", "rq.scheduler"):
            logging.getLogger(name).handlers.clear()  # the CLI installed text handlers here
            logging.getLogger(name).propagate = True
        super().__init__(*args, **kwargs)
