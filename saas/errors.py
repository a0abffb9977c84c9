"""Error handlers that keep every failure in the JSON envelope, whatever raised it."""
import logging

from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from saas.api import error_payload
from saas.extensions import db

log = logging.getLogger(__name__)

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class PaymentRequired(HTTPException):
    """Werkzeug has no class for 402, so ``abort(402)`` would otherwise be a LookupError (500)."""

    code = 402
    description = "A paid plan is required for this."


def token_error(error):
    """Every token problem is a 401 with a Bearer challenge (never the library's 422)."""
    message = str(error) or "The token is missing or invalid."
    return error_payload(401, message), 401, BEARER_CHALLENGE


def database_unavailable(error):
    log.warning("database unavailable: %s", error.__class__.__name__)
    _rollback_quietly()
    return error_payload(503, "The database is unavailable; try again shortly."), 503


def redis_unavailable(error):
    log.warning("redis unavailable: %s", error.__class__.__name__)
    return error_payload(503, "A backing service is unavailable; try again shortly."), 503


def unexpected_error(error):
    log.exception("unhandled error", exc_info=error)
    _rollback_quietly()
    return error_payload(500, InternalServerError.description), 500


def _rollback_quietly():
    try:
        db.session.rollback()
    except Exception:  # the connection may be the thing that is broken
        log.debug("rollback after error failed", exc_info=True)


def register_error_handlers(app):
    """Call after the JWT manager is bound: its per-class handlers are replaced here."""
    app.aborter.mapping.setdefault(402, PaymentRequired)
    jwt_classes = {
        exc_class
        for exc_class in app.error_handler_spec[None][None]
        if issubclass(exc_class, (JWTExtendedException, PyJWTError))
    }
    for exc_class in jwt_classes | {JWTExtendedException, PyJWTError}:
        app.register_error_handler(exc_class, token_error)
    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(RedisError, redis_unavailable)
    app.register_error_handler(Exception, unexpected_error)


def _database_error(error):
    # A dropped connection surfaces as DBAPIError with connection_invalidated set; anything
    # else from the database is a bug in our SQL and stays a 500.
    if getattr(error, "connection_invalidated", False):
        return database_unavailable(error)
    return unexpected_error(error)
