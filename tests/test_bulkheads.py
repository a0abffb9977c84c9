"""Bulkheads, on a real gunicorn: a hung Stripe and a slow model provider each hold at most their
share of the request threads; calls past it are refused at once; the rest of the API answers."""
import threading
import time

import requests

from tests.ai_support import CHAT, messages
from tests.helpers import PASSWORD, bearer
from tests.servers import gunicorn

PORTAL = "/api/v1/billing/customer-portal"
# One worker of 8 threads, the bulkheads at their defaults (3 Stripe calls, 3 model calls). The
# hung calls are given up after 20 s: long enough for the checks made while they hang, however
# slow the machine; the tests release them at once when done.
SERVER = {
    "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "8", "STRIPE_TIMEOUT": "20", "AI_TIMEOUT": "20",
    "AI_MAX_CONCURRENT": "50", "PLAN_QUOTAS": "free:10000000",
}


def session_token(base, email):
    requests.post(f"{base}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=10)
    return requests.post(
        f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    ).json()["access_token"]


def wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def in_background(calls):
    """Start each call in a thread; returns (threads, responses) with responses filled in."""
    responses = []

    def run(call):
        try:
            responses.append(call())
        except requests.RequestException as error:  # a dropped call is a finding, not a crash
            responses.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    return threads, responses


def test_hung_stripe_and_slow_model_calls_leave_the_api_answering(database, fake_stripe, fake_openai):
    with gunicorn(**SERVER) as server:
        base = server.url
        stripe_users = [session_token(base, f"hung-{number}@example.com") for number in range(20)]
        chat_user = session_token(base, "slow-model@example.com")
        fake_stripe.mode, fake_stripe.delay = "slow", 60
        fake_openai.mode, fake_openai.delay = "slow", 60

        calls = [lambda token=token: requests.get(f"{base}{PORTAL}", headers=bearer(token), timeout=30)
                 for token in stripe_users]
        calls += [lambda: requests.post(f"{base}{CHAT}", json={"messages": messages()}, headers=bearer(chat_user),
                                        timeout=30)] * 20
        threads, responses = in_background(calls)

        # The calls past each bulkhead come back at once; three of each stay hung.
        assert wait_for(lambda: len(responses) >= 34), [getattr(r, "status_code", r) for r in responses]
        assert len(fake_stripe.requests_to("POST", "/v1/customers")) == 3
        assert len(fake_openai.completions()) == 3
        refused = [response for response in responses if not isinstance(response, Exception)]
        assert [response.status_code for response in refused] == [503] * 34
        assert all(response.headers["Retry-After"] == "2" for response in refused)
        assert {response.json()["code"] for response in refused} == {503}

        # Answered while the six are hung (were the API's threads taken, these would wait for
        # them: seconds, not milliseconds; no stopwatch needed, the hung six still hang after).
        for _ in range(5):
            assert requests.get(f"{base}/health/live", timeout=10).status_code == 200
            assert requests.get(f"{base}/api/v1/users/me", headers=bearer(chat_user), timeout=10).status_code == 200
        assert len(responses) == 34  # the hung six are still hung while the API answered

        fake_stripe.reset()
        fake_openai.reset()
        for thread in threads:
            thread.join()


def test_a_hung_stripe_holds_a_request_no_longer_than_stripe_timeout(database, fake_stripe):
    """Retries included: the SDK's retries share the one STRIPE_TIMEOUT budget."""
    timeout = 3
    with gunicorn(STRIPE_TIMEOUT=str(timeout), STRIPE_MAX_NETWORK_RETRIES="2", GUNICORN_WORKERS="1") as server:
        token = session_token(server.url, "budget@example.com")
        fake_stripe.mode, fake_stripe.delay = "slow", 60
        started = time.monotonic()
        response = requests.get(f"{server.url}{PORTAL}", headers=bearer(token), timeout=30)
        took = time.monotonic() - started
        attempts = len(fake_stripe.requests_to("POST", "/v1/customers"))
        fake_stripe.reset()
    assert response.status_code == 503
    # Attempts that each took the whole budget would take over three times it (3 attempts, plus
    # the waits between them); the margin is for a loaded machine, not for the app.
    assert took < 2 * timeout, took
    assert attempts >= 1
