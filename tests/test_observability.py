"""JSON logs with request ids and no secrets; Prometheus metrics; Sentry switch."""
import json

import requests
import sentry_sdk

from tests.conftest import make_app
from tests.helpers import PASSWORD, bearer, sign_up
from tests.servers import gunicorn, process_output

METRICS_TOKEN = "metrics-token-for-the-suite"


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_request_is_one_json_log_line_with_its_id_and_no_secret(database, capsys):
    app = make_app(LOG_LEVEL="INFO")
    client = app.test_client()
    client.post("/api/v1/auth/register", json={"email": "log@example.com", "password": PASSWORD})
    tokens = client.post("/api/v1/auth/login", json={"email": "log@example.com", "password": PASSWORD}).get_json()
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}", "X-Request-ID": "trace-me-1"})
    client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    output = capsys.readouterr().out
    for secret in (PASSWORD, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in output
    request_lines = [line for line in _json_lines(output) if line.get("logger") == "saas.request"]
    assert len(request_lines) == 4
    me_line = next(line for line in request_lines if line["path"] == "/api/v1/users/me")
    assert me_line["request_id"] == "trace-me-1" == me.headers["X-Request-ID"]
    assert me_line["status"] == 200
    assert me_line["method"] == "GET"
    assert me_line["user_id"] == "1"
    assert me_line["duration_ms"] >= 0


def test_metrics_are_closed_without_a_configured_token(database):
    assert make_app(METRICS_TOKEN="").test_client().get("/metrics").status_code == 404


def test_metrics_need_the_token(database):
    client = make_app(METRICS_TOKEN=METRICS_TOKEN).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_metrics_count_requests_by_endpoint_and_status_and_show_queue_depth(database):
    client = make_app(METRICS_TOKEN=METRICS_TOKEN).test_client()
    client.get("/health/live")
    client.get("/health/live")
    client.get("/api/v1/users/me")
    client.get("/api/v1/users/me", headers=bearer(sign_up(client)))  # the same endpoint, another status
    client.post("/api/v1/users/me")  # no route takes it
    body = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(as_text=True)
    assert 'saas_http_request_duration_seconds_count{endpoint="system.liveness",method="GET",status="200"} 2.0' in body
    assert 'saas_http_request_duration_seconds_count{endpoint="users.get_me",method="GET",status="401"} 1.0' in body
    assert 'saas_http_request_duration_seconds_count{endpoint="users.get_me",method="GET",status="200"} 1.0' in body
    assert 'saas_http_request_duration_seconds_count{endpoint="unmatched",method="POST",status="405"} 1.0' in body
    assert 'saas_http_request_total{method="POST",status="405"} 1.0' in body
    assert "saas_http_request_duration_seconds_bucket" in body
    assert 'saas_rq_queue_depth{queue="default"} 0.0' in body


def test_metrics_under_gunicorn_add_up_every_worker(database):
    with gunicorn(METRICS_TOKEN=METRICS_TOKEN, GUNICORN_WORKERS="2") as server:
        for _ in range(20):
            requests.get(f"{server.url}/health/live", timeout=10)
        body = requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    assert 'saas_http_request_duration_seconds_count{endpoint="system.liveness",method="GET",status="200"} 2' in body
    # The app's own gauges are part of the scrape under gunicorn too (they were not, once).
    assert 'saas_rq_queue_depth{queue="high"} 0.0' in body
    assert 'saas_app_info{version="1.0.0"} 1.0' in body
    line = next(l for l in body.splitlines() if l.startswith('saas_http_request_duration_seconds_count{endpoint="system.liveness"'))
    # The readiness probe of the fixture adds to the 20 requests made here.
    assert float(line.rsplit(" ", 1)[1]) >= 20


def _series(body, metric):
    """The label sets of ``metric``'s samples in a scrape."""
    return {line.split("{", 1)[1].rsplit("}", 1)[0] for line in body.splitlines() if line.startswith(metric + "{")}


def _scrape(get):
    return get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})


def test_made_up_methods_and_paths_add_no_metric_series(database):
    """Labels that come from the request take values from a fixed set: a method outside the
    standard ones is `other`, a request no route matched is `unmatched` (never its path)."""
    client = make_app(METRICS_TOKEN=METRICS_TOKEN).test_client()
    client.get("/api/v1/users/me")
    for number in range(40):
        client.open("/api/v1/users/me", method=f"X{number:06d}")
        client.open(f"/no/such/page/{number}", method="GET")
        client.open(f"/no/such/page/{number}", method=f"Y{number:06d}")
    body = _scrape(client.get).get_data(as_text=True)
    assert "X0000" not in body and "Y0000" not in body and "/no/such" not in body
    assert _series(body, "saas_http_request_total") == {
        'method="GET",status="401"', 'method="GET",status="404"', 'method="other",status="404"',
        'method="other",status="405"',
    }
    assert _series(body, "saas_http_request_duration_seconds_count") == {
        'endpoint="users.get_me",method="GET",status="401"',
        'endpoint="unmatched",method="GET",status="404"',
        'endpoint="unmatched",method="other",status="404"',
        'endpoint="unmatched",method="other",status="405"',
    }
    assert 'saas_http_request_total{method="other",status="405"} 40.0' in body


def test_made_up_methods_under_gunicorn_stay_one_series(database):
    """Under gunicorn the series are files shared by the workers, kept across their restarts:
    what a stream of made-up methods must not grow."""
    with gunicorn(METRICS_TOKEN=METRICS_TOKEN) as server:
        for number in range(30):
            requests.request(f"X{number:06d}", f"{server.url}/api/v1/users/me", timeout=10)
        body = _scrape(lambda path, **kwargs: requests.get(f"{server.url}{path}", timeout=10, **kwargs)).text
    assert "X0000" not in body
    other = [line for line in body.splitlines() if line.startswith("saas_http_request_total{") and 'method="other"' in line]
    assert other == ['saas_http_request_total{method="other",status="405"} 30.0']


def test_sentry_is_off_without_dsn_and_on_with_one(database):
    make_app(SENTRY_DSN="")
    assert not sentry_sdk.get_client().is_active()
    make_app(SENTRY_DSN="http://public@127.0.0.1:9/1")
    try:
        assert sentry_sdk.get_client().is_active()
        assert sentry_sdk.get_client().options["send_default_pii"] is False
        assert sentry_sdk.get_client().options["max_request_body_size"] == "never"
        assert sentry_sdk.get_client().options["include_local_variables"] is False
    finally:
        sentry_sdk.init(dsn=None)


def test_gunicorns_access_line_is_written_only_when_asked_for(database):
    # The app's own line is there either way; gunicorn's only with GUNICORN_ACCESSLOG.
    for accesslog, written in ((None, False), ("-", True)):
        with gunicorn(LOG_LEVEL="INFO", **({"GUNICORN_ACCESSLOG": accesslog} if accesslog else {})) as server:
            assert requests.get(f"{server}/health/live", timeout=10).status_code == 200
        lines = _json_lines(process_output(server.process))  # complete once gunicorn has stopped
        assert any(line.get("logger") == "saas.request" and line["path"] == "/health/live" for line in lines)
        access = [line for line in lines if line.get("logger") == "gunicorn.access"]
        assert any('"GET /health/live HTTP/1.1" 200' in line["message"] for line in access) is written
