"""The trivial job the benchmark queues: it opens the app context and asks PostgreSQL for 1."""
import sqlalchemy as sa

from saas.core.queue import job_app_context
from saas.extensions import db


@job_app_context
def select_one():
    return db.session.execute(sa.text("SELECT 1")).scalar()


def noop():
    return None
