"""The RQ worker: ``python -m saas.worker`` (what ``make worker`` runs), or the plain CLI with
``rq worker --worker-class saas.worker.Worker --with-scheduler high default low``.

The worker builds the app once, before it forks a work horse per job, and each job runs in a
fresh app context of that app: a job costs the fork and the job, not an app start. Its own log
lines (job started, finished, failed) are JSON like the app's.

It looks after itself: every 15 s it runs RQ's housekeeping (which also takes over the retry
scheduler of a worker that died) and hands back the jobs of killed workers; it vouches for a
running job every 10 s, so a killed worker's job is recovered within a minute; every
SWEEP_INTERVAL_SECONDS one worker of however many queues the repairs of ``saas.sweeps``; and it
waits out a Redis outage (RQ reconnects with backoff; ``main`` starts the worker again if
Redis fails it anywhere else).
"""
import argparse
import gc
import logging
import signal
import sys
import time

import rq
import rq.scheduler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import Config
from saas import create_app
from saas.core.logging import configure_json_logging
from saas.core.queue import JOB_MONITORING_INTERVAL, LOW, QUEUES, enqueue, recover_abandoned_jobs
from saas.core.redis import RedisKeys, connect as connect_redis
from saas.extensions import db
from saas.sweeps import sweep

log = logging.getLogger("saas.worker")

# Waits before starting again after Redis went away: 1 s, 2 s, 4 s... at most 30 s.
RESTART_DELAYS = (1, 2, 4, 8, 15, 30)
# Seconds between a worker's housekeeping rounds (at most; SWEEP_INTERVAL_SECONDS if shorter).
MAINTENANCE_INTERVAL = 15


class Worker(rq.Worker):
    def __init__(self, *args, **kwargs):
        self.app = create_app()
        kwargs.setdefault("job_monitoring_interval", JOB_MONITORING_INTERVAL)
        # RQ's own default is 10 minutes: the scheduler lock of a killed worker (61 s) would be
        # taken over that late, and retries wait for it.
        kwargs.setdefault("maintenance_interval", min(self.app.config["SWEEP_INTERVAL_SECONDS"], MAINTENANCE_INTERVAL))
        super().__init__(*args, **kwargs)
        with self.app.app_context():
            # SQLAlchemy learns the server's dialect details on an engine's first connection
            # (several round trips); learnt here, every horse inherits them instead of asking.
            try:
                db.engine.connect().close()
            except Exception as error:  # the database may be down now: each horse will connect itself
                log.warning("database not reachable at start: %s", error.__class__.__name__)
            db.engine.dispose()
        configure_json_logging(self.app.config["LOG_LEVEL"])
        for name in ("rq.worker", "rq.job", "rq.scheduler"):
            logging.getLogger(name).handlers.clear()  # the CLI installed text handlers here
            logging.getLogger(name).propagate = True

    @property
    def dequeue_timeout(self):
        # RQ waits up to 405 s on an idle queue before it looks at its maintenance clock: wake at
        # least once per sweep interval so the sweeps run on time when there is nothing to do.
        return max(1, min(super().dequeue_timeout, self.maintenance_interval))

    def run_maintenance_tasks(self):
        """RQ's housekeeping (which also takes over the retry scheduler of a worker that died),
        jobs of killed workers handed back, then this interval's sweep, queued by one worker of
        however many."""
        super().run_maintenance_tasks()
        recover_abandoned_jobs(self.connection)
        interval = self.app.config["SWEEP_INTERVAL_SECONDS"]
        if self.connection.set(RedisKeys.SWEEP_LOCK, self.name, nx=True, ex=max(1, interval - 1)):
            with self.app.app_context():
                enqueue(sweep, queue=LOW, backoff=None)

    def fork_work_horse(self, job, queue):
        # Objects that exist before the fork are never collected in the horse: moving them out of
        # the collector's reach saves the horse from touching (and so copying) their pages.
        gc.freeze()
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        gc.disable()  # the horse (the forked child) lives for one job; its garbage goes when it exits
        return super().main_work_horse(job, queue)

    def perform_job(self, job, queue):
        with self.app.app_context():
            # A forked horse must not share the parent's pooled connections, if it has any
            # (rebuilding an empty pool costs a millisecond a job for nothing).
            for engine in db.engines.values():
                if _holds_connections(engine.pool):
                    engine.dispose(close=False)
            return super().perform_job(job, queue)


def _holds_connections(pool):
    # Only queue pools count their connections; any other kind is assumed to hold some.
    if not hasattr(pool, "checkedin"):
        return True
    return bool(pool.checkedin() or pool.checkedout())


_run_scheduler = rq.scheduler.run


def _run_scheduler_quietly(scheduler):
    """RQ's scheduler process, minus the plain-text traceback multiprocessing prints when Redis
    goes away: RQ has already logged the error (as JSON), and the worker starts a new scheduler
    at its next maintenance."""
    try:
        _run_scheduler(scheduler)
    except (RedisConnectionError, RedisTimeoutError):
        raise SystemExit(1) from None


# RQ's scheduler process runs the module's ``run``: an RQ release that stops doing so shows the
# traceback again, and tests/test_self_repair.py (every worker line about Redis is JSON) fails.
rq.scheduler.run = _run_scheduler_quietly


def _stop_now(signum, frame):
    raise SystemExit(0)


def main(argv=None):
    """Work the queues in priority order (high, default, low), with the retry scheduler; start
    again, with growing waits, whenever Redis goes away."""
    parser = argparse.ArgumentParser(prog="python -m saas.worker", description=main.__doc__)
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    options = parser.parse_args(argv)
    config = Config.from_env()
    if not config.redis.url:
        sys.exit("REDIS_URL is not set: the worker needs Redis (without it the app runs jobs inline)")
    # No read timeout: the worker blocks on BLPOP for minutes while the queues are empty.
    connection = connect_redis(config.redis.url, socket_timeout=None, connect_timeout=config.redis.socket_timeout)
    failures = 0
    while True:
        started = time.monotonic()
        try:
            Worker(list(QUEUES), connection=connection).work(burst=options.burst, with_scheduler=True)
            return  # stopped by a signal, or (--burst) the queues are empty
        except (RedisConnectionError, RedisTimeoutError) as error:
            if time.monotonic() - started > 60:
                failures = 0  # it had been working: this is a new outage
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            log.error(
                "redis unavailable; the worker starts again in %s s", delay,
                extra={"error": error.__class__.__name__, "restarts": failures},
            )
            signal.signal(signal.SIGTERM, _stop_now)  # a stop asked for meanwhile is obeyed
            signal.signal(signal.SIGINT, _stop_now)
            time.sleep(delay)


if __name__ == "__main__":
    main()
