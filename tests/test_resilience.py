"""Faults injected on real servers: PostgreSQL restarts, Redis down, Stripe slow, shutdowns."""
import os
import signal
import subprocess
import threading
import time

import requests
import sqlalchemy as sa

from saas.extensions import db
from saas.users.models import User
from tests.conftest import make_app
from tests.helpers import PASSWORD, bearer, login, register
from tests.servers import gunicorn, process_output, start_rq_worker, stop_process

REDIS_DOWN = "redis://127.0.0.1:1/0"


def _restart_postgres():
    script = os.environ.get("TEST_SERVICES_SCRIPT")
    assert script, "TEST_SERVICES_SCRIPT is not set: run the suite with `make test`"
    subprocess.run(["bash", script, "restart-postgres"], check=True, capture_output=True, timeout=120)


def test_a_postgres_restart_fails_no_request(client, user):
    tokens = login(client)
    assert client.get("/api/v1/users/me", headers=bearer(tokens["access_token"])).status_code == 200
    db.session.remove()  # the test's own session must not span the restart (a request's never does)

    _restart_postgres()

    # The gate's lookup retries a dropped connection; the session's pool pings before use.
    paths = ["/api/v1/users/me", "/api/v1/billing/subscription", "/api/v1/users/me"]
    statuses = [client.get(path, headers=bearer(tokens["access_token"])).status_code for path in paths]
    assert statuses == [200, 200, 200]


def test_with_redis_down_login_me_refresh_and_billing_keep_working(database, fake_stripe):
    app = make_app(REDIS_URL=REDIS_DOWN, RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=REDIS_DOWN)
    client = app.test_client()
    register(client, "noredis@example.com")
    tokens = login(client, "noredis@example.com")
    assert client.get("/api/v1/users/me", headers=bearer(tokens["access_token"])).status_code == 200
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    portal = client.get("/api/v1/billing/customer-portal", headers=bearer(refreshed.get_json()["access_token"]))
    assert portal.status_code == 200
    assert client.get("/health").status_code == 503


def test_with_redis_down_logout_still_revokes_the_session(database):
    # Revocation lives in PostgreSQL, so Redis being down never lets a logged-out token back in.
    client = make_app(REDIS_URL=REDIS_DOWN, RATELIMIT_STORAGE_URI="memory://").test_client()
    register(client, "logout@example.com")
    tokens = login(client, "logout@example.com")
    assert client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"])).status_code == 204
    assert client.get("/api/v1/users/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_a_slow_stripe_gives_a_json_503_after_the_configured_timeout(database, fake_stripe):
    client = make_app(STRIPE_TIMEOUT="1").test_client()
    register(client)
    tokens = login(client)
    fake_stripe.delay = 10
    fake_stripe.mode = "slow"
    response = client.post(
        "/api/v1/billing/create-checkout-session", json={"plan": "pro"}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 503
    assert response.get_json()["code"] == 503
    assert "did not answer in time" in response.get_json()["message"]


def test_a_slow_stripe_does_not_hold_up_other_endpoints(database, fake_stripe):
    fake_stripe.delay = 5
    with gunicorn(STRIPE_TIMEOUT="4", GUNICORN_WORKERS="1", GUNICORN_THREADS="4") as server:
        requests.post(f"{server.url}/api/v1/auth/register", json={"email": "s@example.com", "password": PASSWORD}, timeout=10)
        token = requests.post(
            f"{server.url}/api/v1/auth/login", json={"email": "s@example.com", "password": PASSWORD}, timeout=10
        ).json()["access_token"]
        fake_stripe.mode = "slow"
        slow = threading.Thread(
            target=requests.get,
            args=(f"{server.url}/api/v1/billing/customer-portal",),
            kwargs={"headers": bearer(token), "timeout": 30},
        )
        asked = len(fake_stripe.requests_to("POST", "/v1/customers"))
        slow.start()
        # Once Stripe has the call, it holds it for 5 s: /users/me is asked meanwhile.
        _wait_for(lambda: len(fake_stripe.requests_to("POST", "/v1/customers")) > asked)
        me = requests.get(f"{server.url}/api/v1/users/me", headers=bearer(token), timeout=3)
        assert me.status_code == 200
        assert slow.is_alive()  # the Stripe call is still waiting while /users/me was served
        slow.join()


def test_gunicorn_finishes_in_flight_requests_on_sigterm(database, fake_stripe):
    fake_stripe.delay = 3
    with gunicorn(STRIPE_TIMEOUT="10", GUNICORN_WORKERS="1") as server:
        requests.post(f"{server.url}/api/v1/auth/register", json={"email": "g@example.com", "password": PASSWORD}, timeout=10)
        token = requests.post(
            f"{server.url}/api/v1/auth/login", json={"email": "g@example.com", "password": PASSWORD}, timeout=10
        ).json()["access_token"]
        fake_stripe.mode = "slow"
        result = {}

        def call_portal():
            result["response"] = requests.get(
                f"{server.url}/api/v1/billing/customer-portal", headers=bearer(token), timeout=30
            )

        in_flight = threading.Thread(target=call_portal)
        in_flight.start()
        _wait_for(lambda: fake_stripe.requests_to("POST", "/v1/customers"))
        server.process.send_signal(signal.SIGTERM)
        in_flight.join()
        assert result["response"].status_code == 200
        assert server.process.wait(timeout=30) == 0


def test_rq_worker_finishes_the_running_job_on_sigterm(client, fake_stripe):
    fake_stripe.delay = 3
    fake_stripe.mode = "slow"
    user = register(client, "worker@example.com")
    worker = start_rq_worker(STRIPE_TIMEOUT="10")
    try:
        _wait_for(lambda: fake_stripe.requests_to("POST", "/v1/customers"), timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, process_output(worker)
    finally:
        stop_process(worker)
    db.session.expire_all()
    stored = db.session.scalar(sa.select(User.stripe_customer_id).where(User.id == user["id"]))
    assert stored is not None and stored in fake_stripe.customers


def _wait_for(condition, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
