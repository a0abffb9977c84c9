"""nginx in front of gunicorn, with deploy/nginx/nginx.conf: real nginx, real gunicorn, real app.

The config runs unchanged but for its listen port and upstream address (a free loopback port and
the test's gunicorn instead of 8080 and `api:8000`). nginx is the Debian package, which
scripts/test-services.sh installs with PostgreSQL and Redis.
"""
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.ai_support import API_KEYS, CHAT, messages, server_sent_events
from tests.conftest import ROOT
from tests.helpers import PASSWORD, bearer
from tests.fake_openai import FakeOpenAI
from tests.servers import assert_json_error, free_port, gunicorn, port_of, process_output, raw_request, refusing_port

NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
MAX_BODY = 1024 * 1024  # the app's MAX_CONTENT_LENGTH, and nginx's client_max_body_size


def nginx_binary():
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        pytest.fail(
            "nginx is not installed: `make test` installs it (scripts/test-services.sh, Debian package nginx); "
            "or run `apt-get install nginx` as root"
        )
    return binary


def _configured(listen_port, upstream):
    """deploy/nginx/nginx.conf with only the listen port and the upstream address replaced."""
    text = NGINX_CONF.read_text()
    replacements = {
        "listen 8080 default_server;": f"listen 127.0.0.1:{listen_port} default_server;",
        "server api:8000 max_fails=0;": f"server {upstream} max_fails=0;",
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{NGINX_CONF} no longer has exactly one `{old}`"
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def nginx_in_front_of(upstream):
    """Run nginx on a free loopback port, proxying to ``upstream`` (host:port); yields its URL."""
    binary = nginx_binary()
    port = free_port()
    # Traversable by nginx's unprivileged workers when the suite runs as root.
    prefix = Path(tempfile.mkdtemp(prefix="saas-nginx-"))
    prefix.chmod(0o755)
    (prefix / "nginx.conf").write_text(_configured(port, upstream))
    log_file = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [binary, "-e", "stderr", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stdout=log_file, stderr=subprocess.STDOUT,
    )
    process.log_file = log_file
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {process_output(process)[-4000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start listening in time")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(prefix, ignore_errors=True)


class SteppedProvider(FakeOpenAI):
    """The suite's fake provider, but its streams send the first piece, the second a moment
    later, and hold the rest until ``release`` is set. The app writes its first event together
    with the response headers; the second reaches nginx on its own, mid-stream."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def _chunks(self, *args):
        for number, chunk in enumerate(super()._chunks(*args)):
            yield chunk
            if number == 1:  # after the role chunk and the first piece
                time.sleep(0.3)
            elif number == 2:
                self.release.wait(timeout=10)


@pytest.fixture(scope="module")
def provider():
    with SteppedProvider() as server:
        yield server


@pytest.fixture(scope="module")
def app_server(database, provider):
    # LOG_LEVEL=INFO: the app's request lines (with remote_addr) are read by a test below.
    with gunicorn(PROXY_FIX_HOPS="1", LOG_LEVEL="INFO", AI_API_BASE=provider.url) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(app_server):
    with nginx_in_front_of(app_server.url.removeprefix("http://")) as url:
        yield url


# --- slow clients ---------------------------------------------------------------------------


def test_clients_dribbling_headers_do_not_hold_up_probes(proxy):
    """50 clients sending their headers a byte at a time take no gunicorn thread (there are 8):
    probes are answered while every one of them is still mid-header. (A probe that needed a
    thread they held would wait for the first of them to finish, half a minute away.)"""
    port = port_of(proxy)
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
    request = b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 500
    stop, failures, sent = threading.Event(), [], [0]

    def dribble():
        for byte in request:
            for sock in slow:
                try:
                    sock.send(bytes([byte]))
                except OSError as error:
                    failures.append(error)
            sent[0] += 1
            if stop.wait(0.05):
                return

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    try:
        deadline = time.monotonic() + 10
        while sent[0] < 2 and time.monotonic() < deadline:  # every slow client is mid-header
            time.sleep(0.01)
        started_at = sent[0]
        for _ in range(20):
            response = requests.get(f"{proxy}/health/live", timeout=10)
            assert response.status_code == 200 and response.json() == {"status": "alive"}
        answered_at = sent[0]
    finally:
        stop.set()
        dribbler.join()
        for sock in slow:
            sock.close()
    # Every probe was answered while the slow clients were connected and still sending.
    assert not failures, failures[:3]
    assert 2 <= started_at and answered_at < len(request), (started_at, answered_at)


# --- sizes ----------------------------------------------------------------------------------


def test_a_body_over_one_mib_is_a_json_413(proxy):
    response = requests.post(f"{proxy}/api/v1/auth/login", data=b"x" * (MAX_BODY + 1),
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert_json_error(response, 413, "Request Entity Too Large")
    assert "X-Request-ID" not in response.headers  # nginx answered; the app never saw it


def test_a_chunked_body_over_one_mib_is_a_json_413(proxy):
    def chunks():
        for _ in range(MAX_BODY // 65536 + 1):
            yield b"x" * 65536

    response = requests.post(f"{proxy}/api/v1/auth/login", data=chunks(),
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert_json_error(response, 413, "Request Entity Too Large")


def test_a_body_of_exactly_one_mib_reaches_the_app(proxy):
    body = json.dumps({"email": "x@example.com", "password": "p" * (MAX_BODY - 100)})
    body += " " * (MAX_BODY - len(body))
    response = requests.post(f"{proxy}/api/v1/auth/login", data=body.encode(),
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code != 413
    assert "X-Request-ID" in response.headers  # the app's answer (it refuses the long password)
    assert response.headers["Content-Type"] == "application/json"


def test_an_over_long_url_is_a_json_414(proxy):
    response = requests.get(f"{proxy}/{'a' * 33000}", timeout=5)
    assert_json_error(response, 414, "Request-URI Too Long")


def test_an_over_long_header_is_a_json_431(proxy):
    response = requests.get(f"{proxy}/health/live", headers={"X-Big": "b" * 33000}, timeout=5)
    assert_json_error(response, 431, "Request Header Fields Too Large")


def test_too_many_header_bytes_altogether_is_a_json_431(proxy):
    headers = {f"X-Part-{number}": "h" * 30000 for number in range(6)}
    response = requests.get(f"{proxy}/health/live", headers=headers, timeout=5)
    assert_json_error(response, 431, "Request Header Fields Too Large")


def test_a_malformed_request_is_a_json_400(proxy):
    status, head, body = raw_request(port_of(proxy), b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n")
    assert status == 400
    assert "Content-Type: application/json" in head
    assert json.loads(body)["code"] == 400


def test_the_apps_own_errors_pass_through_untouched(proxy):
    response = requests.get(f"{proxy}/no/such/page", timeout=5)
    assert_json_error(response, 404, "Not Found")
    assert "X-Request-ID" in response.headers  # from the app, not from nginx's error page


def test_an_app_that_does_not_answer_is_a_json_502():
    with refusing_port() as port, nginx_in_front_of(f"127.0.0.1:{port}") as url:  # nothing listens there
        response = requests.get(f"{url}/health/live", timeout=5)
    assert_json_error(response, 502, "Bad Gateway")


# --- forwarding -----------------------------------------------------------------------------


def test_the_app_sees_the_address_nginx_saw_not_one_the_client_chose(proxy, app_server):
    # A client on 127.0.0.2 claims to be 203.0.113.9; with PROXY_FIX_HOPS=1 the app must use
    # the address nginx appended (gunicorn's own peer is nginx, 127.0.0.1).
    connection = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=5, source_address=("127.0.0.2", 0))
    connection.request("GET", "/health/live", headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "xff-check-1"})
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 200
    assert response.getheader("X-Request-ID") == "xff-check-1"  # passed through to the app and back

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in process_output(app_server.process).splitlines() if "xff-check-1" in line]
        if lines:
            break
        time.sleep(0.1)
    assert [line["remote_addr"] for line in lines] == ["127.0.0.2"]


def test_nginx_gives_a_request_id_when_the_client_sent_none(proxy):
    response = requests.get(f"{proxy}/health/live", timeout=5)
    assert len(response.headers["X-Request-ID"]) == 32  # nginx's $request_id, 32 hex digits


# --- streaming ------------------------------------------------------------------------------


def test_server_sent_events_are_not_buffered(proxy, provider):
    email = "stream-proxy@example.com"
    requests.post(f"{proxy}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=10)
    login = requests.post(f"{proxy}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    key = requests.post(f"{proxy}{API_KEYS}", json={"name": "proxy"}, headers=bearer(login.json()["access_token"]),
                        timeout=10).json()["key"]

    # Two events must reach the client while the provider still holds the rest of the answer;
    # held back until the end of the stream, the second would make this read time out.
    body = {"messages": messages("Stream me a greeting"), "stream": True}
    with requests.post(f"{proxy}{CHAT}", json=body, headers={"X-API-Key": key}, stream=True, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = response.iter_lines(chunk_size=None, decode_unicode=True)
        early = []
        for line in lines:
            early.append(line)
            if sum(1 for text in early if text.startswith("data:")) == 2:
                break
        assert not provider.release.is_set()
        provider.release.set()
        rest = "\n".join(lines)
    assert [data for _, data in server_sent_events("\n".join(early))] == [{"content": "Hello"}, {"content": " from"}]
    assert server_sent_events(rest)[-1][0] == "usage"
    assert "X-Accel-Buffering" not in response.headers  # nginx took the app's instruction


def test_nothing_in_the_config_buffers_or_compresses_streams():
    directives = [line.split("#")[0].strip() for line in NGINX_CONF.read_text().splitlines()]
    assert not [d for d in directives if d.startswith(("gzip", "proxy_ignore_headers", "postpone_output"))]


# --- docker-compose -------------------------------------------------------------------------


def test_compose_serves_the_api_only_through_the_proxy():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    proxy, api = services["proxy"], services["api"]
    assert "ports" not in api and api["expose"] == ["8000"]
    assert str(api["environment"]["PROXY_FIX_HOPS"]) == "1"
    assert proxy["ports"] == ["8000:8080"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/saas/nginx.conf:ro" in proxy["volumes"]
    assert proxy["command"][:1] == ["nginx"] and "/etc/nginx/saas/nginx.conf" in proxy["command"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
