"""Dependency checks shared by the health endpoints."""
import logging

import sqlalchemy as sa

from saas.core.database import discard
from saas.extensions import db
from saas.core.redis import get_redis
from saas.system.migrations import migration_state

log = logging.getLogger(__name__)


def check_dependencies(*, include_migrations):
    """``{status, database, redis}``, plus ``migrations``: always for readiness, and for /health
    when they are not at this code's head (its healthy answer stays the seed's three fields)."""
    report = {"status": "healthy", "database": _check_database(), "redis": _check_redis()}
    if report["database"] == "ok":
        migrations = _check_migrations()
        if include_migrations or migrations != "ok":
            report["migrations"] = migrations
    failing = [
        part for part, state in report.items() if part != "status" and state not in ("ok", "not configured", "ahead")
    ]
    if failing:
        report["status"] = "unhealthy"
    return report


def _check_database():
    try:
        db.session.execute(sa.text("SELECT 1"))
        return "ok"
    except Exception as error:
        log.warning("health: database check failed: %s", error.__class__.__name__)
        discard()
        return "unavailable"


def _check_redis():
    client = get_redis()
    if client is None:
        return "not configured"
    try:
        client.ping()
        return "ok"
    except Exception as error:
        log.warning("health: redis check failed: %s", error.__class__.__name__)
        return "unavailable"


def _check_migrations():
    with db.engine.connect() as connection:
        return migration_state(connection)
