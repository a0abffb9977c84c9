"""The RQ worker: ``python -m saas.worker`` (what ``make worker`` runs), or the plain CLI with
``rq worker --worker-class saas.worker.Worker --with-scheduler high default low``.

The worker builds the app once, before it forks a work horse per job, and each job runs in a
fresh app context of that app: a job costs the fork and the job, not an app start. Its own log
lines (job started, finished, failed) are JSON like the app's.
"""
import argparse
import gc
import logging
import sys

import rq
from redis import Redis

from config import Config
from saas import create_app
from saas.core.logging import configure_json_logging
from saas.core.queue import QUEUES
from saas.extensions import db


class Worker(rq.Worker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = create_app()
        with self.app.app_context():
            # SQLAlchemy learns the server's dialect details on an engine's first connection
            # (several round trips); learnt here, every horse inherits them instead of asking.
            db.engine.connect().close()
            db.engine.dispose()
        configure_json_logging(self.app.config["LOG_LEVEL"])
        for name in ("rq.worker", "rq.job", "rq.scheduler"):
            logging.getLogger(name).handlers.clear()  # the CLI installed text handlers here
            logging.getLogger(name).propagate = True

    def fork_work_horse(self, job, queue):
        # Objects that exist before the fork are never collected in the horse: moving them out of
        # the collector's reach saves the horse from touching (and so copying) their pages.
        gc.freeze()
        super().fork_work_horse(job, queue)

    def perform_job(self, job, queue):
        if self._is_horse:
            gc.disable()  # the horse lives for one job; its garbage goes when it exits
        with self.app.app_context():
            # A forked horse must not share the parent's pooled connections, if it has any.
            db.engine.dispose(close=False)
            return super().perform_job(job, queue)


def main(argv=None):
    """Work the queues in priority order (high, default, low), with the retry scheduler."""
    parser = argparse.ArgumentParser(prog="python -m saas.worker", description=main.__doc__)
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    options = parser.parse_args(argv)
    config = Config.from_env()
    if not config.redis.url:
        sys.exit("REDIS_URL is not set: the worker needs Redis (without it the app runs jobs inline)")
    # No read timeout: the worker blocks on BLPOP for minutes while the queues are empty.
    connection = Redis.from_url(config.redis.url, socket_connect_timeout=config.redis.socket_timeout)
    worker = Worker(list(QUEUES), connection=connection)
    worker.work(burst=options.burst, with_scheduler=True)


if __name__ == "__main__":
    main()
