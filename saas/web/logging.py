"""One JSON log line per request, with its request id, never a token or a password."""
import logging
import time
import uuid

from flask import g, has_request_context, request

from saas.core.logging import configure_json_logging

REQUEST_ID_HEADER = "X-Request-ID"
log = logging.getLogger("saas.request")


class RequestIdFilter(logging.Filter):
    """Stamps every record made during a request with that request's id."""

    def filter(self, record):
        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = g.get("request_id")
        return True


def _valid_request_id(value):
    return value if value and len(value) <= 128 and value.isprintable() else None


def current_request_id():
    return g.get("request_id")


def init_logging(app):
    configure_json_logging(app.config["LOG_LEVEL"], filters=[RequestIdFilter()])

    @app.before_request
    def start_request_log():
        g.request_started = time.perf_counter()
        g.request_id = _valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex

    @app.after_request
    def finish_request_log(response):
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        principal = g.get("principal")
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 2),
                "user_id": str(principal.user_id) if principal is not None else None,
                "remote_addr": request.remote_addr,
            },
        )
        return response
