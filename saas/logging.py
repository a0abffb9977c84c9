"""JSON logs, one line per request with its request id, never a token or a password."""
import logging
import sys
import time
import uuid

from flask import g, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
log = logging.getLogger("saas.request")


class RequestIdFilter(logging.Filter):
    """Stamps every record made during a request with that request's id."""

    def filter(self, record):
        from flask import has_request_context

        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = getattr(g, "request_id", None)
        return True


def configure_json_logging(level="INFO"):
    """Route the root logger to stdout as JSON; used by the app, gunicorn and RQ workers."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic announces its plugins at import; that is noise in a service's log.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _valid_request_id(value):
    return value if value and len(value) <= 128 and value.isprintable() else None


def init_logging(app):
    configure_json_logging(app.config["LOG_LEVEL"])

    @app.before_request
    def start_request_log():
        g.request_started = time.perf_counter()
        g.request_id = _valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex

    @app.after_request
    def finish_request_log(response):
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 2),
                "user_id": _current_user_id(),
                "remote_addr": request.remote_addr,
            },
        )
        return response


def _current_user_id():
    from flask_jwt_extended import get_jwt

    try:
        return get_jwt().get("sub")
    except RuntimeError:  # no token was verified for this request
        return None
