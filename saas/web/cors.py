"""CORS by flask-cors, for the configured origins only; its answer to requests that carry no
``Origin`` header worked out once.

A request without ``Origin`` (a server, a script, curl: every request a browser does not make
cross-origin) gets the same CORS headers from flask-cors every time: with ``always_send`` (its
default) the allowed origin, the exposed headers and ``Vary: Origin``, whatever the path, method
or status. flask-cors worked them out again on every such request, through werkzeug's header
objects (bench/RESULTS.md). Here flask-cors itself is asked once, at start-up, for what it adds
to such a request, and the edge (``saas.web.edge.Edge``) adds exactly that to the raw header
list; flask-cors still answers every request that carries an ``Origin``, every preflight
(``OPTIONS``) and every Private Network Access question, and the error responses it wraps.
tests/test_cors.py compares both with a plain Flask app under flask-cors.
"""
from flask import Response, request

from saas.extensions import cors

# Headers of the responses the API answers, readable by a browser's script.
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "X-Pagination"]  # X-Pagination: paginated lists
_PRIVATE_NETWORK_KEY = "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK"


def cors_options(allowed_origins):
    """flask-cors's options for the app: one resource, every path."""
    return {
        "resources": {r"/*": {"origins": allowed_origins}},
        "supports_credentials": False,
        "expose_headers": EXPOSED_HEADERS,
    }


def asks_flask_cors(environ):
    """Whether flask-cors must answer the request (its answer depends on the request): it comes
    from a browser's cross-origin call, or is a preflight, or asks about a private network."""
    return bool(environ.get("HTTP_ORIGIN")) or environ.get("REQUEST_METHOD") == "OPTIONS" \
        or _PRIVATE_NETWORK_KEY in environ


def init_cors(app):
    """Bind flask-cors; returns the headers it adds to a request that ``asks_flask_cors`` is
    False for (the edge adds them), and leaves such requests out of its ``after_request``."""
    cors.init_app(app, **cors_options(app.config["ALLOWED_ORIGINS"]))
    functions = app.after_request_funcs.setdefault(None, [])
    found = [index for index, function in enumerate(functions) if function.__name__ == "cors_after_request"]
    if len(found) != 1:
        raise RuntimeError("flask-cors's after_request function was not found: update saas/web/cors.py")
    flask_cors_after_request = functions[found[0]]

    def cors_after_request_for_browsers(response):
        if asks_flask_cors(request.environ):
            return flask_cors_after_request(response)
        return response  # the edge adds what flask-cors would

    functions[found[0]] = cors_after_request_for_browsers
    with app.test_request_context("/", method="GET"):
        answer = flask_cors_after_request(Response())
    return [(name, value) for name, value in answer.headers.items()
            if name.lower().startswith("access-control-") or name.lower() == "vary"]
