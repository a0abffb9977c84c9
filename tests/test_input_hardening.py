"""Issue 11, items 1-5: bodies that cannot be parsed, limiter keys that never raise and never
hold an address, one account per mailbox, and passwords too easy to guess. No server needed:
the embedded app (SQLite, limits in memory) carries every rule."""
import json

import pytest

from saas.auth.limits import account_key
from tests.conftest import WEBHOOK_SECRET
from tests.fake_stripe import sign_payload
from tests.helpers import PASSWORD, bearer, register, sign_up

DEEPLY_NESTED = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = '{"email": "a@example.com", "password": ' + "9" * 5000 + "}"
JSON_ENDPOINTS = [
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("PATCH", "/api/v1/users/me"),
    ("POST", "/api/v1/api-keys"),
    ("POST", "/api/v1/ai/chat"),
    ("POST", "/api/v1/ai/jobs"),
    ("POST", "/api/v1/billing/create-checkout-session"),
]


@pytest.fixture
def limited(embedded_with):
    """The embedded app with rate limits on (in memory) and a 3-failure account lock."""
    return embedded_with(
        RATELIMIT_ENABLED="true", RATELIMIT_LOGIN_ACCOUNT="3 per minute", RATELIMIT_LOGIN_IP="1000 per minute"
    )


# 2. Any body that cannot be parsed is a JSON 400


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("body", [DEEPLY_NESTED, HUGE_NUMBER], ids=["nested", "huge-number"])
def test_an_unparseable_body_is_a_json_400_everywhere(embedded_client, method, path, body):
    token = sign_up(embedded_client, "parser@example.com")
    response = embedded_client.open(path, method=method, data=body, content_type="application/json", headers=bearer(token))
    assert response.status_code == 400, (path, response.get_json())
    assert response.get_json()["code"] == 400


@pytest.mark.parametrize("body", [DEEPLY_NESTED, HUGE_NUMBER], ids=["nested", "huge-number"])
def test_a_signed_webhook_that_cannot_be_parsed_is_a_400(embedded_client, body):
    response = embedded_client.post(
        "/api/v1/billing/webhook", data=body, content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET)},
    )
    assert response.status_code == 400


def test_a_signed_webhook_with_an_absurd_created_time_is_stored_not_a_500(embedded_client):
    body = json.dumps({"id": "evt_absurd", "type": "some.event", "created": 10**30, "data": {"object": {}}})
    response = embedded_client.post(
        "/api/v1/billing/webhook", data=body, content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET)},
    )
    assert response.status_code == 200


# 1 and 3. The per-account lock holds whatever the body


def _guess(client, **kwargs):
    return client.post("/api/v1/auth/login", **kwargs).status_code


def test_a_nested_body_between_guesses_does_not_reopen_a_locked_account(limited):
    register(limited)
    wrong = {"json": {"email": "user@example.com", "password": "wrong guess"}}
    assert [_guess(limited, **wrong) for _ in range(3)] == [401, 401, 401]
    statuses = []
    for _ in range(5):
        limited.post("/api/v1/auth/login", data=DEEPLY_NESTED, content_type="application/json")
        statuses.append(_guess(limited, json={"email": "user@example.com", "password": PASSWORD}))
    assert statuses == [429] * 5  # even the right password waits out the lock


@pytest.mark.parametrize("media_type", ["application/vnd.api+json", "application/merge-patch+json"])
def test_json_logins_of_any_json_media_type_count_against_the_account(limited, media_type):
    register(limited)
    body = json.dumps({"email": "user@example.com", "password": "wrong guess"})
    statuses = [_guess(limited, data=body, content_type=media_type) for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert _guess(limited, json={"email": "user@example.com", "password": "wrong guess"}) == 429


def test_the_account_key_holds_no_address_and_is_the_same_for_every_spelling():
    key = account_key("Jose\u0301@Bücher.Example")
    assert "jos" not in key and "bücher" not in key and "@" not in key
    assert key == account_key("  josé@xn--bcher-kva.example ")


# 4. One mailbox, one account


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("jos\u00e9@example.com", "jose\u0301@example.com"),
        ("ada@bücher.example", "ada@xn--bcher-kva.example"),
        ("joe@example.com", "joe@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"),
        ("Ada@Example.com", "ada@example.COM"),
    ],
)
def test_one_mailbox_registers_once_however_it_is_spelled(embedded_client, first, second):
    stored = register(embedded_client, first)["email"]
    again = embedded_client.post("/api/v1/auth/register", json={"email": second, "password": PASSWORD})
    assert again.status_code == 409
    login = embedded_client.post("/api/v1/auth/login", json={"email": second, "password": PASSWORD})
    assert login.status_code == 200
    assert stored == stored.lower() and "xn--" not in stored


# 5. Passwords too easy to guess


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password", "most common"),
        ("12345678", "most common"),
        ("Password1", "most common"),
        (" " * 8, "only spaces"),
        ("ada.lovelace@example.com", "email address or name"),
        ("ada.lovelace2024", "email address or name"),
        ("I am Lovelace, hello", "email address or name"),
    ],
)
def test_a_guessable_password_is_refused_with_the_reason(embedded_client, password, reason):
    response = embedded_client.post(
        "/api/v1/auth/register",
        json={"email": "ada.lovelace@example.com", "password": password, "full_name": "Ada Lovelace"},
    )
    assert response.status_code == 422
    assert reason in response.get_json()["errors"]["json"]["password"][0]


def test_a_password_change_to_a_common_password_is_refused(embedded_client):
    token = sign_up(embedded_client)
    response = embedded_client.patch(
        "/api/v1/users/me", json={"password": "qwertyuiop", "current_password": PASSWORD}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert "most common" in response.get_json()["errors"]["json"]["password"][0]


def test_an_uncommon_passphrase_is_accepted(embedded_client):
    register(embedded_client, "ada.lovelace@example.com", "engines weave algebraic patterns", full_name="Ada Lovelace")


def test_an_address_typed_into_the_login_form_reaches_no_log_line(limited, caplog):
    caplog.set_level("DEBUG")
    for _ in range(4):
        limited.post("/api/v1/auth/login", json={"email": "secret.person@example.com", "password": "wrong guess"})
    assert "ratelimit" in caplog.text.lower()  # the throttle was logged...
    assert "secret.person" not in caplog.text  # ...without the address
