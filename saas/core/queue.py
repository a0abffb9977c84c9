"""Background work on RQ: the one module that enqueues jobs, names them and reads their state.

Queues by priority, listened to in this order by the worker (``saas.worker``):

- ``high``: billing and account work (Stripe customers, webhook events, usage reports, mail),
- ``default``: AI jobs, which may take minutes and come in bursts,
- ``low``: housekeeping.

So a burst of AI jobs never delays a subscription webhook. Without Redis (the embedded default)
a job runs in the app's own process instead: after the response when a request queued it (the
HTTP layer registers how, ``set_inline_runner``), so no client waits on Stripe or SMTP.
"""
import functools
import logging

from flask import current_app, has_app_context
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import current_timestamp

from saas.core.redis import get_redis

log = logging.getLogger(__name__)

HIGH = "high"
DEFAULT = "default"
LOW = "low"
QUEUES = (HIGH, DEFAULT, LOW)

# Waits between retries, in seconds: a Stripe outage of a few minutes heals by itself.
DEFAULT_BACKOFF = [10, 30, 60, 300, 900]

# How often a worker's parent vouches for the job its horse runs (RQ's heartbeat). RQ then keeps
# the job in the started registry for 60 s more, so a job whose worker was killed would wait
# that long; recover_abandoned_jobs hands it back after two missed heartbeats instead.
JOB_MONITORING_INTERVAL = 10
_RQ_HEARTBEAT_MARGIN = 60

# RQ states in which a job will never run its function again.
_ENDED_STATUSES = (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)


def job_id(kind, key):
    """The RQ id of the job of ``kind`` for ``key`` (e.g. ``ai-chat-<uuid>``): one job per key."""
    return f"{kind}-{key}"


def enqueue(func, *args, queue, backoff=DEFAULT_BACKOFF, job_id=None, job_timeout=None, at=None):
    """Queue ``func(*args)`` on ``queue`` with retries; without Redis, run it in this process.

    ``at`` (an aware datetime): not before then (RQ's scheduler, which the worker runs). Without
    Redis nothing can wait: such a job is dropped with a warning, and None returned.

    Returns the RQ job, or None when it runs inline. An inline failure is logged, not raised.
    Raises RedisError when Redis is configured but cannot be reached.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    connection = get_redis()
    if connection is None:
        if at is not None:
            log.warning("no Redis: %s cannot wait until later and is not run", job_description(func))
            return None
        runner = current_app.extensions.get("inline_job_runner", _run_now)
        runner(functools.partial(_run_logged, func, *args))
        return None
    retry = Retry(max=len(backoff), interval=backoff) if backoff else None
    options = dict(retry=retry, job_id=job_id, job_timeout=job_timeout, description=job_description(func))
    if at is not None:
        return Queue(queue, connection=connection).enqueue_at(at, func, *args, **options)
    return Queue(queue, connection=connection).enqueue(func, *args, **options)


def job_description(func):
    """What RQ logs for a job: the function alone. RQ's default shows the arguments, and those
    may be an address or an id that must stay out of the logs."""
    return f"{func.__module__}.{func.__qualname__}()"


def set_inline_runner(app, runner):
    """``runner(job)`` decides when a job runs without Redis (``job()`` takes no argument)."""
    app.extensions["inline_job_runner"] = runner


def _run_now(job):
    job()


def _run_logged(func, *args):
    # The callers' work (a signup, a webhook) must not fail because a side job did.
    try:
        func(*args)
    except Exception:
        log.exception("inline job %s failed", func.__qualname__)


def job_is_lost(queued_job_id):
    """Whether RQ will never run the job: Redis lost it, or it ended without running to the end.

    None when that cannot be told now (Redis unreachable) or there is no Redis at all.
    """
    connection = get_redis()
    if connection is None:
        return None
    try:
        return Job.fetch(queued_job_id, connection=connection).get_status() in _ENDED_STATUSES
    except NoSuchJobError:
        return True
    except RedisError:
        return None


def recover_abandoned_jobs(connection):
    """Jobs whose worker stopped vouching for them (killed, its machine gone) go back through
    RQ's own cleanup: retried if they have retries left, else failed. Returns how many."""
    cutoff = current_timestamp() + _RQ_HEARTBEAT_MARGIN - 2 * JOB_MONITORING_INTERVAL
    recovered = 0
    for name in QUEUES:
        registry = StartedJobRegistry(name, connection=connection)
        recovered += len(registry.get_expired_job_ids(cutoff))
        registry.cleanup(cutoff)
    return recovered


def queue_depths(connection):
    """``{queue: jobs waiting}`` for every queue."""
    return {name: Queue(name, connection=connection).count for name in QUEUES}


@functools.cache
def _standalone_app():
    # Only reached under a plain `rq worker` without saas.worker.Worker; the factory imports
    # every feature, which imports this module, hence the import here.
    from saas import create_app

    log.warning("building an app for this job: run the worker with saas.worker.Worker to build it once")
    return create_app()


def job_app_context(func):
    """Run the job inside an app context: the worker's (``saas.worker.Worker`` pushes one per
    job), the caller's when it runs inline, else one built here (plain ``rq worker``)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            return func(*args, **kwargs)
        with _standalone_app().app_context():
            return func(*args, **kwargs)

    return wrapper
