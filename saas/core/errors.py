"""Errors of the domain, and the one JSON envelope every layer answers errors with.

Services raise these; the HTTP error handlers, the SSE stream's error event and the job runner
turn them into ``{"code", "status", "message", "errors"?}`` with ``envelope_of``. Each feature
names its own refusals as subclasses (``QuotaExceeded``, ``PlanRequired``...), so the status
code lives with the rule, not with whoever happens to report it.
"""
from http import HTTPStatus


def envelope(code, message=None, errors=None):
    """The error envelope: ``{code, status, message, errors?}``."""
    status = HTTPStatus(code)
    payload = {"code": code, "status": status.phrase, "message": message or status.description or status.phrase}
    if errors:
        payload["errors"] = errors
    return payload


class DomainError(Exception):
    """A rule of the product refused something. ``status`` is the HTTP status it maps to.

    ``errors`` is passed to the client as it is; ``field_errors`` (``{field: [reason]}``) name
    fields of the request, which the HTTP layer files under where the request carried them
    (``json`` or ``query``), like schema validation errors.
    """

    status = 400
    message = "The request could not be processed."
    headers = {}

    def __init__(self, message=None, *, errors=None, field_errors=None, headers=None):
        self.message = message or self.message
        self.errors = errors
        self.field_errors = field_errors
        self.headers = {**self.headers, **(headers or {})}
        super().__init__(self.message)


class InvalidInput(DomainError):
    status = 422
    message = "The request body or parameters are invalid."

    def __init__(self, message=None, *, field=None, reason=None, **kwargs):
        if field is not None:
            kwargs.setdefault("field_errors", {field: [reason or message]})
        super().__init__(message, **kwargs)


class Unauthenticated(DomainError):
    status = 401
    message = "Valid credentials are required."
    headers = {"WWW-Authenticate": "Bearer"}


class PaymentRequired(DomainError):
    status = 402
    message = "A paid plan is required for this."


class Forbidden(DomainError):
    status = 403
    message = "You are not allowed to do this."


class NotFound(DomainError):
    status = 404
    message = "Not found."


class Conflict(DomainError):
    status = 409
    message = "This conflicts with the current state."


class TooManyRequests(DomainError):
    status = 429
    message = "Too many requests; try again later."


class BadGateway(DomainError):
    status = 502
    message = "An outside service failed to answer."


class ServiceUnavailable(DomainError):
    status = 503
    message = "A backing service is unavailable; try again shortly."


class GatewayTimeout(DomainError):
    status = 504
    message = "An outside service did not answer in time; try again shortly."


def envelope_of(error):
    """The envelope of a DomainError outside HTTP (a job's stored error, an SSE error event)."""
    errors = error.errors
    if error.field_errors:
        errors = {**(errors or {}), **error.field_errors}
    return envelope(error.status, error.message, errors)
