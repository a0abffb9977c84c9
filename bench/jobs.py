"""The jobs the benchmark queues. Both run in the app context, as every job of the app does."""
import sqlalchemy as sa

from saas.core.queue import job_app_context
from saas.extensions import db


@job_app_context
def noop():
    """The trivial job: what the worker itself costs a job (fork, RQ's bookkeeping, the context)."""
    return None


@job_app_context
def select_one():
    """A job that asks PostgreSQL for 1: adds the horse's own connection to the database."""
    return db.session.execute(sa.text("SELECT 1")).scalar()
