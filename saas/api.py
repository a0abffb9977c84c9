"""The one place flask-smorest is customised: error envelope, security scheme, docs."""
from http import HTTPStatus

import flask_smorest

BEARER_SCHEME = "BearerAuth"
API_KEY_SCHEME = "ApiKeyAuth"

# Headers of an HTTP error that a client needs to act on it.
FORWARDED_ERROR_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def error_payload(code, message=None, errors=None):
    """The error envelope every layer answers with."""
    payload = {
        "code": code,
        "status": HTTPStatus(code).phrase,
        "message": message or HTTPStatus(code).description or HTTPStatus(code).phrase,
    }
    if errors:
        payload["errors"] = errors
    return payload


class Api(flask_smorest.Api):
    def init_app(self, app, *args, **kwargs):
        super().init_app(app, *args, **kwargs)
        self.spec.components.security_scheme(
            BEARER_SCHEME, {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        )
        self.spec.components.security_scheme(
            API_KEY_SCHEME, {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        )

    def handle_http_exception(self, error):
        """Answer any HTTP error as ``{code, status, message, errors?}``."""
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages")
        message = data.get("message") or error.description
        if error.code == 422 and errors and not data.get("message"):
            message = "The request body or parameters are invalid."
        headers = {
            name: value
            for name, value in error.get_headers()
            if name in FORWARDED_ERROR_HEADERS
        }
        headers.update(data.get("headers") or {})
        if error.response is not None:  # e.g. flask-limiter's 429 carries Retry-After here
            headers.update(
                (name, value)
                for name, value in error.response.headers.items()
                if name in FORWARDED_ERROR_HEADERS
            )
        return error_payload(error.code, message, errors), error.code, headers
