"""The WSGI layer around Flask: request id, security headers, one JSON log line and the metrics
of every request, whoever answered it (a view, an error handler, Flask's own 404); and the CORS
headers of the requests that carry no ``Origin`` (saas/web/cors.py).

One plain WSGI middleware instead of four ``after_request`` hooks: it works on the raw header
list and costs a few microseconds a request, where the hooks and werkzeug's header objects cost
tens (bench/RESULTS.md). The log line and the metrics are written once the answer is complete:
at once for a body of known length, after its last chunk (or ``close()``) for a stream, so a
streamed answer is timed to its end.
"""
import contextvars
import logging
import os
import time

import flask
from flask.sessions import SessionInterface
from werkzeug.exceptions import RequestEntityTooLarge

from saas.core.actor import current_actor
from saas.core.logging import JsonLine
from saas.web.cors import asks_flask_cors

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = "HTTP_X_REQUEST_ID"
USER_ID_KEY = "saas.user_id"  # set in the environ by the gate, for the log line
ENDPOINT_KEY = "saas.endpoint"  # set by ApiRequest when Flask matches the URL, for the metrics

# Headers that suit a JSON API (OWASP Secure Headers for REST), added unless a view set them.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
API_CSP = ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
NO_STORE = ("Cache-Control", "no-store")
HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")

request_id_var = contextvars.ContextVar("request_id", default=None)
log = logging.getLogger("saas.request")


def current_request_id():
    """The id of the request being served (None outside one)."""
    return request_id_var.get()


def _valid_request_id(value):
    return value if value and len(value) <= 128 and value.isprintable() else None


class RequestIdFilter(logging.Filter):
    """Stamps every record made while a request is served with that request's id."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


# The line per request: written as the JSON handler would, without a LogRecord (saas.core.logging).
request_line = JsonLine(log, "request", filter_types=(RequestIdFilter,))


class ApiRequest(flask.Request):
    """Flask's request, which also leaves the matched endpoint in the environ: Flask clears its
    request object before the edge gets to label the request's metrics; and which refuses a
    chunked body over MAX_CONTENT_LENGTH with a 413."""

    _url_rule = None

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        # A body without Content-Length is cut at MAX_CONTENT_LENGTH and handed over silently,
        # as if the client had sent only that much: a 400 for "invalid JSON" at best. One byte
        # more from the server's stream tells a cut body from one of exactly the limit.
        limit = self.max_content_length
        if self.content_length is None and limit is not None and len(data) >= limit:
            if self.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
        return data.decode(errors="replace") if as_text else data

    @property
    def url_rule(self):
        return self._url_rule

    @url_rule.setter
    def url_rule(self, rule):
        self._url_rule = rule
        if rule is not None:
            self.environ[ENDPOINT_KEY] = rule.endpoint


def run_after_response(job):
    """Run ``job`` once the response has been sent (when the server closes it), in an app
    context of its own; outside a request, now. The inline runner of jobs without Redis."""
    if not flask.has_request_context():
        job()
        return
    app = flask.current_app._get_current_object()

    def in_app_context():
        with app.app_context():
            job()

    @flask.after_this_request
    def schedule(response):
        response.call_on_close(in_app_context)
        return response


class NoCookieSessions(SessionInterface):
    """A JSON API authenticated by bearer tokens keeps no cookie session: Flask's default would
    build a signing serializer on every request for nothing."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response):
        return None


class Edge:
    def __init__(self, app, *, metrics, production, page_policies, cors_headers=()):
        """``page_policies``: ``{path: Content-Security-Policy}`` for the pages (the docs) that
        need another policy than the API's deny-all one. ``cors_headers``: what flask-cors adds
        to the requests it leaves to the edge (``saas.web.cors``)."""
        self.app = app
        self.cors_headers = list(cors_headers)
        self.metrics = metrics
        self.production = production
        self.page_policies = {path: ("Content-Security-Policy", policy) for path, policy in page_policies.items()}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request_id = _valid_request_id(environ.get(_REQUEST_ID_KEY)) or os.urandom(16).hex()
        token = request_id_var.set(request_id)
        current_actor.set(None)  # the gate names this request's caller; never the previous one's
        path = environ.get("PATH_INFO", "")
        answer = {}
        cors_headers = () if asks_flask_cors(environ) else self.cors_headers

        def start_with_headers(status, headers, exc_info=None):
            answer["status"] = status
            present = {name.lower() for name, _ in headers}
            answer["sized"] = "content-length" in present
            if cors_headers and "access-control-allow-origin" not in present:
                headers.extend(cors_headers)
            headers.append((REQUEST_ID_HEADER, request_id))
            headers.extend(header for header in SECURITY_HEADERS if header[0].lower() not in present)
            if "content-security-policy" not in present:
                headers.append(self.page_policies.get(path, API_CSP))
            if "cache-control" not in present and path.startswith("/api/"):
                headers.append(NO_STORE)
            if self.production and "strict-transport-security" not in present:
                headers.append(HSTS)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, start_with_headers)
        except BaseException:
            request_id_var.reset(token)
            raise
        if answer.get("sized"):
            self._finish(environ, answer, started, token)
            return body
        return _Finishing(body, lambda: self._finish(environ, answer, started, token))

    def _finish(self, environ, answer, started, token):
        seconds = time.perf_counter() - started
        status = answer.get("status", "500")[:3]
        method = environ.get("REQUEST_METHOD", "")
        self.metrics.observe(environ.get(ENDPOINT_KEY), method, status, seconds)
        if log.isEnabledFor(logging.INFO):
            request_line.write({
                "method": method,
                "path": environ.get("PATH_INFO", ""),
                "status": int(status),
                "duration_ms": round(seconds * 1000, 2),
                "user_id": environ.get(USER_ID_KEY),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "request_id": request_id_var.get(),  # what RequestIdFilter would add
            })
        try:
            request_id_var.reset(token)
        except ValueError:  # closed from another context than the one that served it
            request_id_var.set(None)


class _Finishing:
    """A streamed body, with ``finish`` run once: after its last chunk, or when it is closed."""

    def __init__(self, body, finish):
        self._body = body
        self._finish = finish

    def __iter__(self):
        yield from self._body
        self._finish_once()

    def close(self):
        try:
            if hasattr(self._body, "close"):
                self._body.close()
        finally:
            self._finish_once()

    def _finish_once(self):
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()
