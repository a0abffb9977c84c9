"""Error handlers that keep every failure in the JSON envelope, whatever raised it.

HTTP errors (404, 405, 413, webargs' 422, flask-limiter's 429) are answered by the EnvelopeApi
(``saas.web.api``); domain errors raised by services, database and Redis outages and bugs here.
"""
import logging

from flask import request
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from saas.core.database import discard
from saas.core.errors import DomainError, envelope
from saas.extensions import db

log = logging.getLogger(__name__)


class HTTPPaymentRequired(HTTPException):
    """Werkzeug has no class for 402, so ``abort(402)`` would otherwise be a LookupError (500)."""

    code = 402
    description = "A paid plan is required for this."


def domain_error(error):
    """A service's refusal, with field errors filed where the request carried the fields."""
    errors = error.errors
    if error.field_errors:
        location = "query" if any(name in request.args for name in error.field_errors) else "json"
        errors = {**(errors or {}), location: error.field_errors}
    return envelope(error.status, error.message, errors), error.status, error.headers


# PostgreSQL's codes for a missing table or column; SQLite says it in words.
_MISSING_SCHEMA_CODES = ("42P01", "42703")
_MISSING_SCHEMA_WORDS = ("no such table", "no such column")


def _missing_schema(error):
    """Whether the database lacks the tables the code expects (`flask db upgrade` not run)."""
    original = getattr(error, "orig", None)
    return getattr(original, "pgcode", None) in _MISSING_SCHEMA_CODES or any(
        words in str(original).lower() for words in _MISSING_SCHEMA_WORDS
    )


def database_unavailable(error):
    if _missing_schema(error):
        return schema_not_migrated(error)
    log.warning("database unavailable: %s", error.__class__.__name__)
    _rollback_quietly()
    return envelope(503, "The database is unavailable; try again shortly."), 503


def schema_not_migrated(error):
    log.error("the database schema is behind the code: run `flask db upgrade`")
    _rollback_quietly()
    return envelope(503, "The database schema is not up to date: an operator must run `flask db upgrade`."), 503


def redis_unavailable(error):
    log.warning("redis unavailable: %s", error.__class__.__name__)
    return envelope(503, "A backing service is unavailable; try again shortly."), 503


def unexpected_error(error):
    log.exception("unhandled error", exc_info=error)
    _rollback_quietly()
    return envelope(500, InternalServerError.description), 500


def _database_error(error):
    # A dropped connection surfaces as DBAPIError with connection_invalidated set, a forgotten
    # migration as a missing table; anything else from the database is a bug in our SQL (500).
    if getattr(error, "connection_invalidated", False):
        return database_unavailable(error)
    if _missing_schema(error):
        return schema_not_migrated(error)
    return unexpected_error(error)


def _rollback_quietly():
    try:
        discard()  # whatever the failed request left in the session
    except Exception:  # the connection may be the thing that is broken: let the session go
        log.debug("rollback after error failed", exc_info=True)
        try:
            db.session.close()
        except Exception:
            log.debug("closing the session after error failed", exc_info=True)


def register_error_handlers(app):
    app.aborter.mapping.setdefault(402, HTTPPaymentRequired)
    app.register_error_handler(DomainError, domain_error)
    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(RedisError, redis_unavailable)
    app.register_error_handler(Exception, unexpected_error)
