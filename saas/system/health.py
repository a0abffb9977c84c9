"""Dependency checks shared by the health endpoints."""
import logging

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from flask import current_app

from saas.extensions import db
from saas.core.redis import get_redis

log = logging.getLogger(__name__)


def check_dependencies(*, include_migrations):
    report = {"status": "healthy", "database": _check_database(), "redis": _check_redis()}
    if include_migrations and report["database"] == "ok":
        report["migrations"] = _check_migrations()
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
        db.session.rollback()
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
    """``ok`` at this code's head; ``ahead`` when the database carries a revision this code does
    not know (the next release migrated it: expand-then-contract keeps this release working, so
    it stays ready during a rolling update); ``pending`` when migrations are missing."""
    script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == set(script.get_heads()):
        return "ok"
    try:
        for revision in current:
            script.get_revision(revision)
    except CommandError:  # not a revision of this code
        return "ahead"
    return "pending"
