"""POST /api/v1/billing/create-checkout-session and GET /api/v1/billing/customer-portal."""
from datetime import datetime

import pytest

from saas.core.bulkhead import Bulkhead
from tests.billing_support import customer_user, subscribe
from tests.helpers import at_once, bearer, sign_up

CHECKOUT = "/api/v1/billing/create-checkout-session"
PORTAL = "/api/v1/billing/customer-portal"

FOREIGN_URLS = [
    "https://evil.com/billing",
    "https://localhost:3000.evil.com/x",
    "http://localhost:3000.evil.com/x",
    "http://localhost:3000@evil.com/",
    "//evil.com/x",
    "/relative/path",
    "javascript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "https://localhost:3000/",  # https is another origin than http://localhost:3000
    "http://localhost:3001/",
    "https://app.example.com.evil.com/",
    "http://[::1/",
    "http://localhost:3000\t.evil.com/",
    " http://localhost:3000/",
    "",
]


def checkout(client, token, **body):
    return client.post(CHECKOUT, json=body, headers=bearer(token))


def created_customers(fake_stripe):
    return fake_stripe.requests_to("POST", "/v1/customers")


# -- checkout ---------------------------------------------------------------------------------


def test_checkout_by_plan_creates_the_missing_customer_with_the_users_idempotency_key(client, tokens, fake_stripe):
    response = checkout(client, tokens["access_token"], plan="pro")

    assert response.status_code == 200
    body = response.get_json()
    assert body["checkout_url"].startswith("https://checkout.stripe.com/")
    session = fake_stripe.checkout_sessions[body["session_id"]]

    user = client.get("/api/v1/users/me", headers=bearer(tokens["access_token"])).get_json()
    [creation] = created_customers(fake_stripe)
    created_at = int(datetime.fromisoformat(user["created_at"]).timestamp())
    assert creation.headers["Idempotency-Key"] == f"saas-customer-create-user-{user['id']}-{created_at}"
    [org] = [org for org in client.get("/api/v1/orgs", headers=bearer(tokens["access_token"])).get_json() if org["personal"]]
    assert creation.params["metadata"] == {"user_id": str(user["id"]), "org_id": str(org["id"])}
    assert session["customer"] == user["stripe_customer_id"]

    [request] = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert request.params["mode"] == "subscription"
    assert request.params["line_items"] == [{"price": "price_pro", "quantity": "1"}]
    assert request.params["client_reference_id"] == f"org-{org['id']}"  # the personal organization pays
    assert request.params["subscription_data"] == {"metadata": {"org_id": str(org["id"]), "user_id": str(user["id"])}}
    assert request.params["success_url"] == "http://localhost:3000/billing/success?session_id={CHECKOUT_SESSION_ID}"
    assert request.params["cancel_url"] == "http://localhost:3000/billing/cancel"


def test_checkout_by_price_id_reuses_the_customer(client, tokens, fake_stripe):
    first = checkout(client, tokens["access_token"], price_id="price_team")
    second = checkout(client, tokens["access_token"], price_id="price_team", plan="team")

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(created_customers(fake_stripe)) == 1
    prices = [r.params["line_items"][0]["price"] for r in fake_stripe.requests_to("POST", "/v1/checkout/sessions")]
    assert prices == ["price_team"]  # the second asked for the same price: the open session is reused
    assert second.get_json() == first.get_json()


def test_checkout_accepts_redirects_to_allowed_origins(client, tokens, fake_stripe):
    response = checkout(
        client, tokens["access_token"], plan="pro",
        success_url="https://app.example.com/thanks?s={CHECKOUT_SESSION_ID}",
        cancel_url="http://LOCALHOST:3000/pricing",
    )

    assert response.status_code == 200
    [request] = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert request.params["success_url"] == "https://app.example.com/thanks?s={CHECKOUT_SESSION_ID}"
    assert request.params["cancel_url"] == "http://LOCALHOST:3000/pricing"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": "enterprise"}, "plan"),
        ({"price_id": "price_unknown"}, "price_id"),
        ({"price_id": "price_team", "plan": "pro"}, "price_id"),
        ({}, "price_id"),
    ],
    ids=["unknown-plan", "unknown-price", "plan-and-price-disagree", "neither"],
)
def test_checkout_of_an_unknown_plan_or_price_is_422(client, tokens, fake_stripe, body, field):
    response = checkout(client, tokens["access_token"], **body)

    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]
    assert fake_stripe.requests_to("POST", "/v1/checkout/sessions") == []


@pytest.mark.parametrize("field", ["success_url", "cancel_url"])
@pytest.mark.parametrize("url", FOREIGN_URLS)
def test_checkout_refuses_redirects_off_the_allowed_origins(client, tokens, fake_stripe, field, url):
    response = checkout(client, tokens["access_token"], plan="pro", **{field: url})

    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]
    assert fake_stripe.requests == []


def test_checkout_rejects_unknown_fields(client, tokens):
    response = checkout(client, tokens["access_token"], plan="pro", quantity=5)

    assert response.status_code == 422
    assert "quantity" in response.get_json()["errors"]["json"]


@pytest.mark.parametrize(("mode", "status"), [("down", 502), ("unavailable", 503)])
def test_checkout_when_stripe_fails_is_a_json_502_or_503(client, tokens, fake_stripe, mode, status):
    fake_stripe.mode = mode

    response = checkout(client, tokens["access_token"], plan="pro")

    assert response.status_code == status
    assert response.get_json()["code"] == status


@pytest.mark.parametrize("headers", [{}, bearer("not.a.token"), {"Authorization": "Basic abc"}])
def test_checkout_needs_a_valid_access_token(client, fake_stripe, headers):
    response = client.post(CHECKOUT, json={"plan": "pro"}, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert fake_stripe.requests == []


@pytest.mark.parametrize("status", ["active", "trialing", "past_due"])
def test_checkout_while_subscribed_is_409_pointing_at_the_portal(inline_client, fake_stripe, status):
    user, token = customer_user(inline_client, fake_stripe)
    subscribe(inline_client, fake_stripe, user, status=status)

    response = checkout(inline_client, token, plan="team")

    assert response.status_code == 409
    assert "portal" in response.get_json()["message"]
    assert fake_stripe.requests_to("POST", "/v1/checkout/sessions") == []


def test_checkout_after_a_canceled_subscription_is_allowed(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscribe(inline_client, fake_stripe, user, status="canceled")

    assert checkout(inline_client, token, plan="team").status_code == 200


# -- customer portal --------------------------------------------------------------------------


def test_portal_creates_the_missing_customer_and_returns_to_the_frontend(client, tokens, fake_stripe):
    response = client.get(PORTAL, headers=bearer(tokens["access_token"]))

    assert response.status_code == 200
    assert response.get_json()["portal_url"].startswith("https://billing.stripe.com/")
    assert len(created_customers(fake_stripe)) == 1
    [request] = fake_stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert request.params["return_url"] == "http://localhost:3000/account"
    user = client.get("/api/v1/users/me", headers=bearer(tokens["access_token"])).get_json()
    assert request.params["customer"] == user["stripe_customer_id"]


def test_portal_accepts_a_return_url_on_an_allowed_origin(client, tokens, fake_stripe):
    response = client.get(PORTAL, query_string={"return_url": "https://app.example.com/settings"},
                          headers=bearer(tokens["access_token"]))

    assert response.status_code == 200
    [request] = fake_stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert request.params["return_url"] == "https://app.example.com/settings"


@pytest.mark.parametrize("url", FOREIGN_URLS)
def test_portal_refuses_a_return_url_off_the_allowed_origins(client, tokens, fake_stripe, url):
    response = client.get(PORTAL, query_string={"return_url": url}, headers=bearer(tokens["access_token"]))

    assert response.status_code == 422
    assert "return_url" in response.get_json()["errors"]["query"]
    assert fake_stripe.requests == []


@pytest.mark.parametrize(("mode", "status"), [("down", 502), ("unavailable", 503)])
def test_portal_when_stripe_fails_is_a_json_502_or_503(client, tokens, fake_stripe, mode, status):
    fake_stripe.mode = mode

    response = client.get(PORTAL, headers=bearer(tokens["access_token"]))

    assert response.status_code == status
    assert response.get_json()["code"] == status


def test_portal_needs_a_valid_access_token(client, fake_stripe):
    assert client.get(PORTAL).status_code == 401
    assert client.get(PORTAL, headers=bearer("not.a.token")).status_code == 401
    assert fake_stripe.requests == []


# One open checkout per user (issue 11, item 8)


def _checkout(client, token, **body):
    response = client.post(CHECKOUT, json={"plan": "pro", **body}, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_second_checkout_for_the_same_plan_reuses_the_open_session(client, tokens, fake_stripe):
    first = _checkout(client, tokens["access_token"])
    again = _checkout(client, tokens["access_token"])
    assert again == first
    assert len(fake_stripe.requests_to("POST", "/v1/checkout/sessions")) == 1
    assert [s["status"] for s in fake_stripe.checkout_sessions.values()] == ["open"]


def test_a_checkout_for_another_plan_expires_the_open_one(client, tokens, fake_stripe):
    pro = _checkout(client, tokens["access_token"])
    team = _checkout(client, tokens["access_token"], plan="team")
    assert team["session_id"] != pro["session_id"]
    assert fake_stripe.checkout_sessions[pro["session_id"]]["status"] == "expired"
    assert fake_stripe.checkout_sessions[team["session_id"]]["status"] == "open"


def test_a_completed_checkout_is_never_handed_out_again(client, tokens, fake_stripe):
    first = _checkout(client, tokens["access_token"])
    fake_stripe.complete_checkout_session(first["session_id"])
    second = _checkout(client, tokens["access_token"])
    assert second["session_id"] != first["session_id"]


def test_concurrent_checkouts_open_one_session(app, tokens, fake_stripe, monkeypatch):
    # The Stripe bulkhead (3 calls at once by default) would refuse the fourth: not what this tests.
    monkeypatch.setitem(app.extensions["bulkheads"], "stripe", Bulkhead("Stripe", 8))
    sessions = at_once(
        app, 4, lambda own: own.post(CHECKOUT, json={"plan": "pro"}, headers=bearer(tokens["access_token"])).get_json()
    )
    assert len({session["session_id"] for session in sessions}) == 1
    assert [s["status"] for s in fake_stripe.checkout_sessions.values()] == ["open"]


def test_portal_creates_the_missing_customer_when_the_request_begins_with_no_session(app, redis_client, fake_stripe):
    # As gunicorn serves it: every request in an app context of its own, so the gate reads the
    # caller and their organization before the request has an ORM session.
    client = app.test_client()
    token = sign_up(client)

    response = client.get(PORTAL, headers=bearer(token))

    assert response.status_code == 200, response.get_json()
    assert len(created_customers(fake_stripe)) == 1
