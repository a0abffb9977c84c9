"""Rate limits, body size, security headers, proxy handling and CORS.

Rate-limited apps are built per test with tiny limits; Redis (the limit storage) is flushed
after every test by conftest.
"""
import os
import time

import pytest
import redis
from flask import request
from limits import parse as parse_limit

from saas.extensions import db, limiter
from tests.conftest import make_app
from tests.helpers import PASSWORD, bearer
from tests.servers import own_redis

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/users/me"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
EMAIL = "user@example.com"


@pytest.fixture
def limited_app(database):
    """Build rate-limited apps (env overrides as keywords); their connections are closed after."""
    apps = []

    def build(**overrides):
        settings = {
            "RATELIMIT_ENABLED": "true",
            "RATELIMIT_LOGIN_IP": "100 per minute",
            "RATELIMIT_LOGIN_ACCOUNT": "100 per minute",
            "RATELIMIT_REGISTER_IP": "100 per minute",
            "RATELIMIT_REFRESH_IP": "100 per minute",
            **overrides,
        }
        apps.append(make_app(**settings))
        return apps[-1]

    yield build
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def client_from(app, address="198.51.100.7"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def create_account(client, email=EMAIL):
    response = client.post(REGISTER, json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.get_json()


def fail_login(client, email=EMAIL, **kwargs):
    return client.post(LOGIN, json={"email": email, "password": "wrong password"}, **kwargs)


def assert_throttled(response):
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert body["code"] == 429
    assert body["status"] == "Too Many Requests"
    assert body["message"]


# Login throttling


def test_failed_logins_per_account_are_throttled(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    for _ in range(3):
        assert fail_login(client).status_code == 401
    assert_throttled(fail_login(client))


def test_a_throttled_account_refuses_even_the_right_password(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    for _ in range(3):
        fail_login(client)
    assert client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).status_code == 429


def test_account_throttling_spans_addresses(limited_app):
    app = limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute")
    create_account(client_from(app))
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        assert fail_login(client_from(app, address)).status_code == 401
    assert_throttled(fail_login(client_from(app, "203.0.113.4")))


def test_account_throttling_ignores_the_emails_case_and_spaces(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    for email in (EMAIL, EMAIL.upper(), f"  {EMAIL} "):
        assert fail_login(client, email=email).status_code == 401
    assert_throttled(fail_login(client, email="User@Example.com"))


def test_account_throttling_counts_oauth2_form_logins(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    for _ in range(3):
        response = client.post(LOGIN, data={"username": EMAIL, "password": "wrong password"})
        assert response.status_code == 401
    assert_throttled(fail_login(client))


def test_throttling_one_account_leaves_other_accounts_alone(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    create_account(client, email="other@example.com")
    for _ in range(4):
        fail_login(client)
    response = client.post(LOGIN, json={"email": "other@example.com", "password": PASSWORD})
    assert response.status_code == 200


def test_failed_logins_of_unknown_emails_are_throttled_too(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    for _ in range(3):
        assert fail_login(client, email="nobody@example.com").status_code == 401
    assert_throttled(fail_login(client, email="nobody@example.com"))


def test_failed_logins_per_address_are_throttled(limited_app):
    app = limited_app(RATELIMIT_LOGIN_IP="3 per minute")
    client = client_from(app, "203.0.113.9")
    for number in range(3):
        assert fail_login(client, email=f"guess{number}@example.com").status_code == 401
    assert_throttled(fail_login(client, email="guess3@example.com"))


def test_address_throttling_leaves_other_addresses_alone(limited_app):
    app = limited_app(RATELIMIT_LOGIN_IP="3 per minute")
    for number in range(4):
        fail_login(client_from(app, "203.0.113.9"), email=f"guess{number}@example.com")
    assert fail_login(client_from(app, "203.0.113.10"), email="guess9@example.com").status_code == 401


def test_successful_logins_are_not_counted(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute", RATELIMIT_LOGIN_IP="3 per minute"))
    create_account(client)
    for _ in range(6):
        assert client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).status_code == 200
    assert fail_login(client).status_code == 401


def test_invalid_login_bodies_are_not_counted_against_the_account(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    for _ in range(5):
        assert client.post(LOGIN, json={"email": EMAIL}).status_code == 422
    assert fail_login(client).status_code == 401


def test_login_responses_carry_rate_limit_headers(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    response = fail_login(client)
    assert "X-RateLimit-Limit" in response.headers
    assert "X-RateLimit-Remaining" in response.headers


# Password guessing through the password change


def test_wrong_current_passwords_are_throttled_per_account(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    change = {"password": "a brand new passphrase", "current_password": "a wrong guess"}
    for _ in range(3):
        assert client.patch(ME, json=change, headers=bearer(access)).status_code == 400
    assert_throttled(client.patch(ME, json=change, headers=bearer(access)))


def test_profile_changes_are_not_counted_as_password_guesses(limited_app):
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    for number in range(5):
        response = client.patch(ME, json={"full_name": f"Name {number}"}, headers=bearer(access))
        assert response.status_code == 200


# Registration and refresh


def test_registrations_per_address_are_throttled(limited_app):
    client = client_from(limited_app(RATELIMIT_REGISTER_IP="2 per minute"))
    create_account(client, email="one@example.com")
    create_account(client, email="two@example.com")
    assert_throttled(client.post(REGISTER, json={"email": "three@example.com", "password": PASSWORD}))


def test_registration_throttling_leaves_other_addresses_alone(limited_app):
    app = limited_app(RATELIMIT_REGISTER_IP="2 per minute")
    for number in range(3):
        client_from(app, "203.0.113.20").post(
            REGISTER, json={"email": f"u{number}@example.com", "password": PASSWORD}
        )
    create_account(client_from(app, "203.0.113.21"), email="elsewhere@example.com")


def test_refreshes_per_address_are_throttled(limited_app):
    client = client_from(limited_app(RATELIMIT_REFRESH_IP="2 per minute"))
    for _ in range(2):
        assert client.post(REFRESH, json={"refresh_token": "not-a-token"}).status_code == 401
    assert_throttled(client.post(REFRESH, json={"refresh_token": "not-a-token"}))


def test_limits_are_off_when_ratelimit_enabled_is_false(limited_app):
    client = client_from(limited_app(RATELIMIT_ENABLED="false", RATELIMIT_REFRESH_IP="1 per minute"))
    for _ in range(3):
        assert client.post(REFRESH, json={"refresh_token": "not-a-token"}).status_code == 401


def test_an_app_with_limits_off_stays_unlimited_after_a_limited_app_is_built(limited_app):
    # flask-limiter keeps its state on the one Limiter instance every app shares.
    unlimited = client_from(limited_app(RATELIMIT_ENABLED="false", RATELIMIT_REFRESH_IP="1 per minute"))
    limited_app(RATELIMIT_REFRESH_IP="1 per minute")
    for _ in range(3):
        assert unlimited.post(REFRESH, json={"refresh_token": "not-a-token"}).status_code == 401


# API keys spend their owner's budget (RATELIMIT_DEFAULT), however many there are


def new_key(client, access, path="/api/v1/api-keys"):
    response = client.post(path, json={"name": "script"}, headers=bearer(access))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def test_a_users_personal_keys_and_sessions_share_one_budget(limited_app):
    client = client_from(limited_app(RATELIMIT_DEFAULT="6 per minute"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    keys = [new_key(client, access) for _ in range(3)]
    answers = [client.get(ME, headers={"X-API-Key": keys[number % 3]}).status_code for number in range(6)]
    assert answers == [200] * 6
    for key in keys:
        assert_throttled(client.get(ME, headers={"X-API-Key": key}))
    assert_throttled(client.get(ME, headers=bearer(access)))
    create_account(client, "someone.else@example.com")
    other = client.post(LOGIN, json={"email": "someone.else@example.com", "password": PASSWORD}).get_json()
    assert client.get(ME, headers={"X-API-Key": new_key(client, other["access_token"])}).status_code == 200


def test_an_organizations_keys_share_the_organizations_budget(limited_app):
    client = client_from(limited_app(RATELIMIT_DEFAULT="6 per minute"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    org = client.post("/api/v1/orgs", json={"name": "Acme"}, headers=bearer(access)).get_json()
    keys = [new_key(client, access, f"/api/v1/orgs/{org['id']}/api-keys") for _ in range(3)]
    answers = [client.get(ME, headers={"X-API-Key": keys[number % 3]}).status_code for number in range(6)]
    assert answers == [200] * 6
    for key in keys:
        assert_throttled(client.get(ME, headers={"X-API-Key": key}))
    # The organization's budget is not its admin's: their session and personal keys still work.
    assert client.get(ME, headers=bearer(access)).status_code == 200
    assert client.get(ME, headers={"X-API-Key": new_key(client, access)}).status_code == 200


# Redis down: the limiter fails open to per-process memory


# One round trip to Redis for a gated request's limits (issue 28)


def commands_sent(redis_client, action):
    """The commands clients sent Redis while ``action()`` ran, by name, in order (the commands a
    script runs inside Redis are not round trips, and are left out); and what ``action`` returned."""
    with redis_client.monitor() as monitor:
        result = action()
        redis_client.echo("end of the action")
        sent = []
        for event in monitor.listen():
            if event["command"].split()[0].upper() == "ECHO" and "end of the action" in event["command"]:
                ours = event["client_port"]  # the ECHO's connection: this test's own
                return [command for port, command in sent if port != ours], result
            if event["client_type"] != "lua":
                sent.append((event["client_port"], event["command"].split()[0].upper()))


def test_a_gated_request_counts_all_its_limits_in_one_round_trip_to_redis(limited_app, redis_client):
    # PATCH /users/me has two limits: the caller's default, and the password check's (read, and
    # counted only after a wrong password); its headers describe one of them.
    client = client_from(limited_app(RATELIMIT_DEFAULT="50 per minute", RATELIMIT_LOGIN_ACCOUNT="3 per minute"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    for request in (lambda: client.get(ME, headers=bearer(access)),
                    lambda: client.patch(ME, json={"full_name": "Ada"}, headers=bearer(access))):
        sent, response = commands_sent(redis_client, request)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] and response.headers["X-RateLimit-Remaining"]
        assert sent == ["EVALSHA"]


def scripts_sent(redis_client, action):
    """``commands_sent`` without the handshakes of the connections made meanwhile."""
    sent, result = commands_sent(redis_client, action)
    return [command for command in sent if command in ("EVAL", "EVALSHA", "SCRIPT")], result


def counter_of(redis_client, who="/user:"):
    (key,) = [key for key in redis_client.keys("LIMITS*") if who.encode() in key]
    return int(redis_client.get(key))


def counted_once(limited_app):
    """A client of a rate-limited app, its access token, and one GET /users/me counted (on the
    thread's own connection to Redis, made by that count)."""
    client = client_from(limited_app(RATELIMIT_DEFAULT="50 per minute"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    assert client.get(ME, headers=bearer(access)).status_code == 200
    return client, access


def test_a_count_goes_through_the_client_when_redis_has_forgotten_the_script(limited_app, redis_client):
    # Each thread sends the script on its own connection (saas.web.ratelimit.CountingFixedWindow);
    # a Redis that restarted without it answers NOSCRIPT there, and redis-py's client loads it.
    client, access = counted_once(limited_app)
    redis_client.script_flush()
    sent, response = scripts_sent(redis_client, lambda: client.get(ME, headers=bearer(access)))
    assert response.status_code == 200 and response.headers["X-RateLimit-Remaining"] == "48"
    assert sent == ["EVALSHA", "EVALSHA", "SCRIPT", "EVALSHA"]  # ours, then the client's
    sent, response = scripts_sent(redis_client, lambda: client.get(ME, headers=bearer(access)))
    assert sent == ["EVALSHA"] and response.headers["X-RateLimit-Remaining"] == "47"
    assert counter_of(redis_client) == 3


def test_a_count_on_a_connection_redis_closed_is_counted_once_through_the_client(limited_app, redis_client):
    client, access = counted_once(limited_app)
    redis_client.client_kill_filter(_type="normal", skipme=True)  # as a Redis restart or timeout would
    response = client.get(ME, headers=bearer(access))
    assert response.status_code == 200 and response.headers["X-RateLimit-Remaining"] == "48"
    assert not limiter._storage_dead  # the client's retry reached Redis: no fallback to memory
    sent, response = scripts_sent(redis_client, lambda: client.get(ME, headers=bearer(access)))
    assert sent == ["EVALSHA"] and response.headers["X-RateLimit-Remaining"] == "47"
    assert counter_of(redis_client) == 3


def test_a_forked_process_counts_on_a_connection_of_its_own(limited_app, redis_client):
    client, access = counted_once(limited_app)
    strategy = limiter.limiter
    parents = strategy._connection()
    socket_before = parents._sock
    assert socket_before is not None
    child = os.fork()
    if child == 0:  # only Redis in here: the child must not touch the parent's database connections
        try:
            theirs = strategy._connection()
            ok = theirs is not parents and strategy.hit(parse_limit("10 per minute"), "forked") is True \
                and theirs._sock is not None and theirs._sock is not socket_before
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sent, response = scripts_sent(redis_client, lambda: client.get(ME, headers=bearer(access)))
    assert response.status_code == 200 and sent == ["EVALSHA"]
    assert strategy._connection() is parents and parents._sock is socket_before
    assert counter_of(redis_client) == 2 and counter_of(redis_client, "/forked/") == 1


def test_a_redis_that_goes_away_and_comes_back_empty_counts_again_on_the_threads_connection(limited_app):
    # Redis stops under a running app: the thread's connection fails, the client's path finds
    # Redis down, the limits count in memory; Redis comes back empty (no script): flask-limiter
    # finds it again (after its backoff) and the thread counts on a new connection to it.
    with own_redis() as server:
        path = server.url.removeprefix("unix://").split("?")[0]
        redis_client = redis.Redis(unix_socket_path=path)
        client = client_from(limited_app(RATELIMIT_DEFAULT="50 per minute", RATELIMIT_STORAGE_URI=f"redis+unix://{path}"))
        create_account(client)
        access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
        assert client.get(ME, headers=bearer(access)).headers["X-RateLimit-Remaining"] == "49"
        assert counter_of(redis_client) == 1
        server.stop()
        assert client.get(ME, headers=bearer(access)).status_code == 200
        assert limiter._storage_dead  # counting in process memory
        server.start()
        # flask-limiter looks for the storage again 2 s after its last look, then 4, 8... when it
        # was still not there (a busy machine): each request until then counts in memory.
        deadline = time.monotonic() + 30
        while limiter._storage_dead and time.monotonic() < deadline:
            time.sleep(0.5)
            assert client.get(ME, headers=bearer(access)).status_code == 200
        assert not limiter._storage_dead and counter_of(redis_client) == 1  # found, and counted there
        threads_connection = limiter.limiter._connection()
        threads_connection.send_command("CLIENT", "ID")
        connection_id = threads_connection.read_response()
        response = client.get(ME, headers=bearer(access))
        assert response.status_code == 200 and response.headers["X-RateLimit-Remaining"] == "48"
        assert counter_of(redis_client) == 2
        (last,) = [entry for entry in redis_client.client_list() if int(entry["id"]) == connection_id]
        assert last["cmd"] == "evalsha"  # counted on the thread's own connection


def test_flask_limiters_current_limit_is_the_one_the_gate_counted(limited_app):
    # The gate leaves what it counted out of flask-limiter's request context until something asks
    # for it (saas.extensions.PerAppLimiter.context): then it is there, as flask-limiter's own would be.
    app = limited_app(RATELIMIT_DEFAULT="5 per minute")
    seen = []

    @app.after_request
    def ask(response):
        current = limiter.current_limit
        seen.append(None if current is None else (current.limit.amount, current.remaining, current.key, current.breached))
        return response

    client = client_from(app)
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    response = client.get(ME, headers=bearer(access))
    amount, remaining, key, breached = seen[-1]
    assert (amount, remaining, breached) == (5, 4, False) and "/user:" in key
    assert response.headers["X-RateLimit-Limit"] == "5" and response.headers["X-RateLimit-Remaining"] == "4"


def test_a_gated_requests_limit_headers_describe_its_window_in_redis(limited_app, redis_client):
    client = client_from(limited_app(RATELIMIT_DEFAULT="5 per minute"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    for remaining in (4, 3, 2):
        started = time.time()
        response = client.get(ME, headers=bearer(access))
        (key,) = [key for key in redis_client.keys("LIMITS*") if b"/user:" in key]
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(remaining) == str(5 - int(redis_client.get(key)))
        expires = started + redis_client.ttl(key)
        assert expires - 2 <= int(response.headers["X-RateLimit-Reset"]) <= expires + 2
        assert 0 < int(response.headers["Retry-After"]) <= 60


COUNTED_KEY = "saas.rate_limit_counted"
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")


def test_a_gated_requests_limit_headers_are_the_ones_flask_limiter_writes(limited_app):
    """saas.web.ratelimit.rate_limit_headers writes them itself where it can: each response is
    compared with what flask-limiter's own hook writes for the same request, at the same moment.
    The cases: a 200, a 401 from the gate, a 404 from the view, the 429 past the limit, a
    conditional deduction's view (PATCH /users/me: the hook's), a response of a view without the
    gate (login) and one that has its own Retry-After."""
    app = limited_app(RATELIMIT_DEFAULT="4 per minute", RATELIMIT_LOGIN_ACCOUNT="3 per minute")
    [hook] = [hook for hook in app.after_request_funcs[None] if hasattr(hook, "flask_limiter_hook")]
    compared, written_by_us = [], []

    @app.after_request
    def compare(response):  # runs before the hooks registered earlier: it sees the response they get
        counted = request.environ.get(COUNTED_KEY)
        written_by_us.append(counted is not None)
        ours, theirs = app.response_class(), app.response_class()
        ours.headers = response.headers.copy()
        hook(ours)
        hook.flask_limiter_hook(theirs)  # asks flask-limiter's context: what the gate counted goes there
        assert [(name, ours.headers.get(name)) for name in RATE_LIMIT_HEADERS] == \
            [(name, theirs.headers.get(name)) for name in RATE_LIMIT_HEADERS]
        compared.append(response.status_code)
        if counted is not None:  # so that the hook after this one writes as it would have
            request.environ[COUNTED_KEY] = counted
        return response

    client = client_from(app)
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    assert client.get(ME, headers=bearer(access)).status_code == 200
    assert client.get(ME, headers=bearer("not-a-token")).status_code == 401
    assert client.get("/api/v1/orgs/999999", headers=bearer(access)).status_code == 404
    assert client.patch(ME, json={"full_name": "Ada"}, headers=bearer(access)).status_code == 200
    while (response := client.get(ME, headers=bearer(access))).status_code != 429:
        pass
    assert response.headers["X-RateLimit-Remaining"] == "0"
    # register, login, the four above, then GET /users/me until the 429; the gate counted every
    # gated one, and left to flask-limiter's hook only PATCH's (a conditional deduction) and the
    # 429's (a breach, answered with its own Retry-After)
    assert compared[:6] == [201, 200, 200, 401, 404, 200] and compared[-1] == 429
    assert written_by_us[:6] == [False, False, True, True, True, False]
    assert all(written_by_us[6:-1]) and not written_by_us[-1]


def test_a_wrong_current_password_is_counted_and_shown_in_the_headers(limited_app):
    # The headers describe the limit of the shortest window: here the password check's, whose
    # count goes up after the answer (a wrong password) and before the headers are written.
    client = client_from(limited_app(RATELIMIT_LOGIN_ACCOUNT="3 per minute", RATELIMIT_DEFAULT="600 per hour"))
    create_account(client)
    access = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    change = {"password": "a brand new passphrase", "current_password": "a wrong guess"}
    shown = [client.patch(ME, json=change, headers=bearer(access)).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert shown == ["2", "1", "0"]
    assert_throttled(client.patch(ME, json=change, headers=bearer(access)))


def test_a_gated_view_limits_in_memory_when_the_limit_storage_is_down(limited_app):
    # The first limited request this app serves is a gated one: the gate finds the storage down.
    access = client_from(limited_app(RATELIMIT_ENABLED="false"))
    create_account(access)
    token = access.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).get_json()["access_token"]
    client = client_from(limited_app(RATELIMIT_STORAGE_URI=CLOSED_PORT_REDIS, RATELIMIT_DEFAULT="3 per minute"))
    for _ in range(3):
        assert client.get(ME, headers=bearer(token)).status_code == 200
    assert_throttled(client.get(ME, headers=bearer(token)))


def test_requests_are_served_when_the_limit_storage_is_down(limited_app):
    client = client_from(limited_app(RATELIMIT_STORAGE_URI=CLOSED_PORT_REDIS))
    create_account(client)
    assert client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD}).status_code == 200
    assert fail_login(client).status_code == 401


def test_limits_still_hold_in_memory_when_the_limit_storage_is_down(limited_app):
    client = client_from(
        limited_app(RATELIMIT_STORAGE_URI=CLOSED_PORT_REDIS, RATELIMIT_LOGIN_ACCOUNT="3 per minute")
    )
    create_account(client)
    for _ in range(3):
        assert fail_login(client).status_code == 401
    assert_throttled(fail_login(client))


def test_a_new_app_uses_its_own_limit_storage_after_another_lost_redis(limited_app, redis_client):
    broken = client_from(limited_app(RATELIMIT_STORAGE_URI=CLOSED_PORT_REDIS))
    broken.post(REFRESH, json={"refresh_token": "not-a-token"})
    client = client_from(limited_app(RATELIMIT_REFRESH_IP="5 per minute"))
    client.post(REFRESH, json={"refresh_token": "not-a-token"})
    assert redis_client.keys("LIMITS*")


def test_an_oversized_login_body_does_not_knock_the_limiter_off_redis(limited_app, redis_client):
    client = client_from(limited_app(MAX_CONTENT_LENGTH="1024"))
    assert client.post(LOGIN, data="x" * 2048, content_type="application/json").status_code == 413
    redis_client.flushdb()
    fail_login(client)
    assert redis_client.keys("LIMITS*")


# Body size


def test_a_json_body_over_max_content_length_is_a_json_413(client):
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    response = client.post(REGISTER, data="x" * (limit + 1), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["code"] == 413
    assert response.get_json()["status"] == "Request Entity Too Large"


def test_a_form_body_over_max_content_length_is_a_json_413(client):
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    response = client.post(LOGIN, data={"username": "u" * limit, "password": PASSWORD})
    assert response.status_code == 413
    assert response.get_json()["code"] == 413


def test_max_content_length_comes_from_the_environment(database):
    client = make_app(MAX_CONTENT_LENGTH="100").test_client()
    response = client.post(REGISTER, json={"email": "a@example.com", "password": "p" * 200})
    assert response.status_code == 413


def test_abort_with_402_is_a_json_402(database):
    from flask_smorest import abort

    app = make_app()
    app.add_url_rule("/needs-a-plan", "needs_a_plan", lambda: abort(402, message="Upgrade."))
    response = app.test_client().get("/needs-a-plan")
    assert response.status_code == 402
    assert response.get_json() == {"code": 402, "status": "Payment Required", "message": "Upgrade."}


# Security headers


def test_responses_forbid_sniffing_and_framing(client):
    response = client.get("/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_error_responses_carry_the_security_headers(client):
    response = client.get("/no/such/path")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_json_responses_get_a_deny_all_content_security_policy(client):
    assert "default-src 'none'" in client.get("/").headers["Content-Security-Policy"]


def test_token_responses_must_not_be_cached(client, user):
    response = client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})
    assert response.headers["Cache-Control"] == "no-store"


def test_hsts_is_not_sent_outside_production(client):
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_hsts_is_sent_in_production():
    app = make_app(APP_ENV="production", SECRET_KEY="p" * 40, DEBUG="false", RATELIMIT_ENABLED="false")
    response = app.test_client().get("/health/live")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


# ProxyFix


def fail_logins_through_proxy(app, forwarded_for_values):
    """Failed logins from one proxy address, one per X-Forwarded-For value; the last response."""
    for number, forwarded_for in enumerate(forwarded_for_values):
        response = fail_login(
            client_from(app, "10.0.0.1"),
            email=f"guess{number}@example.com",
            headers={"X-Forwarded-For": forwarded_for},
        )
    return response


def test_behind_one_proxy_the_forwarded_address_is_the_rate_limit_key(limited_app):
    app = limited_app(PROXY_FIX_HOPS="1", RATELIMIT_LOGIN_IP="2 per minute")
    assert_throttled(fail_logins_through_proxy(app, ["203.0.113.50"] * 3))
    assert fail_logins_through_proxy(app, ["203.0.113.51"]).status_code == 401


def test_behind_one_proxy_only_the_last_forwarded_address_counts(limited_app):
    # A client can prepend anything to X-Forwarded-For; the proxy appends the real address.
    app = limited_app(PROXY_FIX_HOPS="1", RATELIMIT_LOGIN_IP="2 per minute")
    spoofed = [f"{fake}, 203.0.113.60" for fake in ("1.1.1.1", "2.2.2.2", "3.3.3.3")]
    assert_throttled(fail_logins_through_proxy(app, spoofed))


def test_without_proxy_fix_the_forwarded_address_is_ignored(limited_app):
    app = limited_app(PROXY_FIX_HOPS="0", RATELIMIT_LOGIN_IP="2 per minute")
    assert_throttled(fail_logins_through_proxy(app, ["203.0.113.70", "203.0.113.71", "203.0.113.72"]))


# CORS


def preflight(client, origin):
    return client.options(
        LOGIN,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )


def test_cors_preflight_is_answered_for_an_allowed_origin(client):
    response = preflight(client, "https://app.example.com")
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def test_cors_preflight_is_not_answered_for_a_foreign_origin(client):
    response = preflight(client, "https://evil.example.net")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Methods" not in response.headers


def test_cors_preflight_of_a_protected_endpoint_needs_no_token(client):
    response = client.options(
        ME,
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_cors_never_allows_credentials(client):
    response = preflight(client, "https://app.example.com")
    assert "Access-Control-Allow-Credentials" not in response.headers
