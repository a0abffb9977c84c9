"""CORS headers: the edge adds flask-cors's answer to requests without ``Origin`` (worked out
once, saas/web/cors.py) and flask-cors answers the rest; together they must answer every request
exactly as flask-cors alone does. The reference is a plain Flask app under flask-cors with the
same options (tests/test_abuse.py holds what those options mean for browsers)."""
import pytest
from flask import Flask
from flask_cors import CORS

from saas.web.cors import cors_options
from tests.conftest import make_app

ORIGINS = ["http://localhost:3000", "https://app.example.com"]
ALLOWED, FOREIGN = "https://app.example.com", "https://evil.example.net"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"}

# (method, path, headers): answered by a view, by the gate (401), by Flask's 404 and 405, by a
# body the parser refuses; with and without Origin, preflights, Private Network Access questions.
REQUESTS = [
    (method, path, {**extra, **({"Origin": origin} if origin is not None else {})})
    for method, path in [("GET", "/health/live"), ("GET", "/api/v1/users/me"), ("GET", "/no/such/page"),
                         ("DELETE", "/health/live"), ("POST", "/api/v1/auth/login")]
    for origin in (None, "", ALLOWED, FOREIGN)
    for extra in ({}, {"Access-Control-Request-Private-Network": "true"})
] + [
    ("OPTIONS", "/api/v1/auth/login", {**PREFLIGHT, **origin})
    for origin in ({}, {"Origin": ALLOWED}, {"Origin": FOREIGN})
]


def cors_headers(response):
    return [(name, value) for name, value in response.headers.items()
            if name.lower().startswith("access-control-") or name.lower() == "vary"]


@pytest.fixture(scope="module")
def reference():
    app = Flask("reference")
    CORS(app, **cors_options(ORIGINS))

    @app.route("/<path:anything>", methods=["GET", "POST", "DELETE"])
    def anything(anything):
        return ""

    return app.test_client()


@pytest.fixture(scope="module")
def saas(database):
    return make_app(ALLOWED_ORIGINS=",".join(ORIGINS)).test_client()


@pytest.mark.parametrize(("method", "path", "headers"), REQUESTS)
def test_the_cors_headers_are_flask_cors_own(saas, reference, method, path, headers):
    body = {"data": "{not json", "content_type": "application/json"} if method == "POST" else {}
    ours = saas.open(path, method=method, headers=headers, **body)
    assert ours.status_code < 500
    assert cors_headers(ours) == cors_headers(reference.open(path, method=method, headers=headers))


def test_a_request_without_origin_gets_the_headers_from_the_edge_alone(saas):
    """The shortcut is taken: flask-cors's after_request is not what adds them."""
    app = saas.application
    [wrapper] = [function for function in app.after_request_funcs[None]
                 if function.__name__ == "cors_after_request_for_browsers"]
    assert app.extensions["cors_headers_without_origin"] == [
        ("Access-Control-Allow-Origin", ORIGINS[0]),
        ("Access-Control-Expose-Headers", "Retry-After, X-Pagination, X-Request-ID"),
        ("Vary", "Origin"),
    ]
    with app.test_request_context("/health/live"):
        response = app.make_response("")
        assert cors_headers(wrapper(response)) == []
    assert cors_headers(saas.get("/health/live")) == app.extensions["cors_headers_without_origin"]
