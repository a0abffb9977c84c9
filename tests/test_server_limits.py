"""gunicorn reached directly, in production mode: its own refusals are in the JSON envelope, its
limits are no tighter than the proxy's, a body over the limit is a 413 however it is sent, and a
stop answers requests already on kept-alive connections."""
import signal
import threading
import time
from urllib.parse import quote

import pytest
import requests

from tests.helpers import PASSWORD, bearer
from tests.servers import assert_json_error, gunicorn, port_of, process_output, raw_request

PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": "production-grade-secret-key-of-more-than-32-bytes"}
MAX_BODY = 1024 * 1024
# 2,048 characters, the longest return_url the API accepts, most of them outside ASCII: about
# 12 KiB once percent-encoded, over gunicorn's default 4 KiB request line.
LONG_RETURN_URL = "http://localhost:3000/" + "é" * (2048 - len("http://localhost:3000/"))


@pytest.fixture(scope="module")
def server(database):
    with gunicorn(**PRODUCTION) as running:
        yield running


def session_token(base, email):
    requests.post(f"{base}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=10)
    login = requests.post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    return login.json()["access_token"]


def test_a_2048_character_non_ascii_return_url_is_served(server, fake_stripe):
    token = session_token(server.url, "long-url@example.com")
    response = requests.get(
        f"{server.url}/api/v1/billing/customer-portal?return_url={quote(LONG_RETURN_URL)}",
        headers=bearer(token), timeout=30,
    )
    assert len(response.request.url) > 8190
    assert response.status_code == 200, response.text
    assert response.json()["portal_url"]


def test_a_malformed_request_is_answered_in_json(server):
    status, head, body = raw_request(port_of(server.url), b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n")
    assert status == 400
    assert "Content-Type: application/json" in head
    assert body.startswith(b'{"code": 400')


def test_too_many_headers_is_a_json_431(server):
    headers = {f"X-Many-{number}": "m" for number in range(250)}
    response = requests.get(f"{server.url}/health/live", headers=headers, timeout=10)
    assert_json_error(response, 431, "Request Header Fields Too Large")


def test_a_chunked_body_over_the_limit_is_a_json_413(server):
    def chunks():
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536

    response = requests.post(
        f"{server.url}/api/v1/auth/login", data=chunks(), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert_json_error(response, 413, "Request Entity Too Large")


def test_a_sized_body_over_the_limit_is_a_json_413(server):
    response = requests.post(
        f"{server.url}/api/v1/auth/login", data=b"x" * (MAX_BODY + 1),
        headers={"Content-Type": "application/json"}, timeout=10,
    )
    assert_json_error(response, 413, "Request Entity Too Large")


def test_a_stop_answers_requests_on_kept_alive_connections(database, fake_stripe):
    """Clients holding kept-alive connections when SIGTERM arrives, and sending on them right
    after: every request is answered (the last ones with `Connection: close`), none is reset."""
    with gunicorn(**PRODUCTION, GUNICORN_WORKERS="1", GUNICORN_THREADS="4") as running:
        sessions = [requests.Session() for _ in range(16)]
        for session in sessions:
            assert session.get(f"{running.url}/health/live", timeout=5).status_code == 200
        answers, errors = [], []

        def again(session):
            try:
                answers.append(session.get(f"{running.url}/health/live", timeout=10).status_code)
            except requests.ConnectionError as error:
                errors.append(error)

        running.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10  # the master has the signal and passes it on to the worker
        while "Handling signal: term" not in process_output(running.process) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "Handling signal: term" in process_output(running.process)
        threads = [threading.Thread(target=again, args=(session,)) for session in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert answers == [200] * 16
        assert running.process.wait(timeout=30) == 0
