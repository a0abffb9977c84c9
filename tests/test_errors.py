"""Every failure leaves as the JSON envelope, including the ones nobody planned for."""
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.conftest import make_app

PRODUCTION_SECRET = "production-grade-secret-key-of-more-than-32-bytes"


def _app_with_failing_route(exception):
    app = make_app(APP_ENV="production", SECRET_KEY=PRODUCTION_SECRET)

    def fail():
        raise exception

    app.add_url_rule("/test-only/fail", "fail", fail)
    return app


def test_an_unhandled_exception_is_a_json_500_without_internals(database):
    response = _app_with_failing_route(ZeroDivisionError("secret internals")).test_client().get("/test-only/fail")
    assert response.status_code == 500
    assert response.is_json
    body = response.get_json()
    assert body["code"] == 500 and body["status"] == "Internal Server Error"
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_redis_failing_inside_a_request_is_a_json_503(database):
    response = _app_with_failing_route(RedisConnectionError("down")).test_client().get("/test-only/fail")
    assert response.status_code == 503
    assert response.get_json()["code"] == 503


def test_a_body_over_the_size_limit_is_a_json_413(database):
    client = make_app(MAX_CONTENT_LENGTH="1024").test_client()
    response = client.post("/api/v1/auth/register", data=b"x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["code"] == 413
