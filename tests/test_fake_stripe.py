"""Exercise tests/fake_stripe.py through the real stripe SDK (no mocks)."""

import json
import time
import warnings

import pytest
import requests
import stripe

from tests.fake_stripe import FakeStripe, decode_form, make_event, sign_payload

API_KEY = "sk_test_fake"


@pytest.fixture(scope="module")
def fake():
    server = FakeStripe().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean(fake):
    fake.reset()
    yield
    fake.reset()


@pytest.fixture
def make_client(fake):
    def make(api_key=API_KEY, timeout=5, max_network_retries=0):
        return stripe.StripeClient(
            api_key,
            base_addresses={"api": fake.url},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    return make


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def customer(client):
    return client.v1.customers.create(params={"email": "ada@example.com", "metadata": {"user_id": "1"}})


# -- customers -------------------------------------------------------------------


def test_customer_create_and_retrieve(fake, client):
    created = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"user_id": "42"}}
    )

    assert isinstance(created, stripe.Customer)
    assert created.id.startswith("cus_")
    assert created.email == "ada@example.com"
    assert created.metadata["user_id"] == "42"
    assert created.livemode is False
    assert created.last_response.request_id.startswith("req_")
    assert client.v1.customers.create(params={"name": ""}).name is None  # "" unsets, as in Stripe

    fetched = client.v1.customers.retrieve(created.id)
    assert fetched.id == created.id and fetched.name == "Ada"

    method, path, params, headers = fake.requests_to("POST", "/v1/customers")[0]
    assert (method, path) == ("POST", "/v1/customers")
    assert params == {"email": "ada@example.com", "name": "Ada", "metadata": {"user_id": "42"}}
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert fake.customers[created.id]["email"] == "ada@example.com"


def test_unknown_customer_is_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.retrieve("cus_nope")
    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"


def test_deleted_customer_and_its_subscriptions(fake, client, customer):
    sub = fake.add_subscription(customer.id, "price_pro")

    fake.delete_customer(customer.id)

    fetched = client.v1.customers.retrieve(customer.id)
    assert fetched.deleted is True
    assert fake.subscriptions[sub["id"]]["status"] == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing_portal.sessions.create(params={"customer": customer.id})


def test_idempotency_key_replays_the_first_response(fake, client):
    params = {"email": "ada@example.com", "metadata": {"user_id": "7"}}

    first = client.v1.customers.create(params=params, options={"idempotency_key": "signup-7"})
    second = client.v1.customers.create(params=params, options={"idempotency_key": "signup-7"})

    assert second.id == first.id
    assert len(fake.customers) == 1
    assert second.last_response.headers["Idempotent-Replayed"] == "true"

    with pytest.raises(stripe.IdempotencyError) as excinfo:
        client.v1.customers.create(params={"email": "eve@example.com"}, options={"idempotency_key": "signup-7"})
    assert excinfo.value.http_status == 400
    assert "same parameters" in excinfo.value.user_message
    assert len(fake.customers) == 1


def test_v1_namespace_has_no_deprecation_warning_but_legacy_one_does(fake, client):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client.v1.customers.create(params={"email": "new@example.com"})

    with pytest.warns(DeprecationWarning, match="use StripeClient.v1.customers"):
        legacy = client.customers.create(params={"email": "old@example.com"})
    assert legacy.id in fake.customers


# -- checkout & portal ---------------------------------------------------------------


def checkout_params(customer_id, price="price_pro"):
    return {
        "customer": customer_id,
        "mode": "subscription",
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": "https://app.example.com/billing/success",
        "cancel_url": "https://app.example.com/billing/cancel",
        "client_reference_id": "1",
        "metadata": {"user_id": "1"},
        "allow_promotion_codes": True,
    }


def test_checkout_session_with_known_price(fake, client, customer):
    session = client.v1.checkout.sessions.create(params=checkout_params(customer.id))

    assert session.object == "checkout.session"
    assert session.id.startswith("cs_test_")
    assert session.url == f"https://checkout.stripe.com/c/pay/{session.id}"
    assert session.customer == customer.id
    assert session.metadata["user_id"] == "1"

    sent = fake.requests_to("POST", "/v1/checkout/sessions")[0].params
    assert sent["line_items"] == [{"price": "price_pro", "quantity": "1"}]
    assert sent["allow_promotion_codes"] == "true"
    assert client.v1.checkout.sessions.retrieve(session.id).url == session.url


def test_checkout_session_rejects_unknown_price_and_customer(fake, client, customer):
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.create(params=checkout_params(customer.id, price="price_gold"))
    assert excinfo.value.param == "line_items[0][price]"
    assert excinfo.value.code == "resource_missing"

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.create(params=checkout_params("cus_missing"))
    assert excinfo.value.param == "customer"
    assert fake.checkout_sessions == {}


def test_known_prices_are_configurable():
    with FakeStripe(prices=("price_gold",)) as other:
        other_client = stripe.StripeClient(API_KEY, base_addresses={"api": other.url}, max_network_retries=0)
        cus = other_client.v1.customers.create(params={"email": "x@example.com"})
        session = other_client.v1.checkout.sessions.create(params=checkout_params(cus.id, price="price_gold"))
        assert session.url.startswith("https://checkout.stripe.com/c/pay/cs_test_")
        with pytest.raises(stripe.InvalidRequestError):
            other_client.v1.checkout.sessions.create(params=checkout_params(cus.id, price="price_pro"))


def test_billing_portal_session(client, customer):
    portal = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://app.example.com/settings"}
    )
    assert portal.object == "billing_portal.session"
    assert portal.url.startswith("https://billing.stripe.com/p/session/test_")
    assert portal.return_url == "https://app.example.com/settings"


# -- subscriptions -------------------------------------------------------------------------


def test_subscription_list_and_retrieve(fake, client, customer):
    other = fake.add_customer(email="other@example.com")
    period_end = int(time.time()) + 7 * 86400
    old = fake.add_subscription(customer.id, "price_pro", status="canceled")
    current = fake.add_subscription(customer.id, "price_team", current_period_end=period_end, cancel_at_period_end=True)
    fake.add_subscription(other["id"], "price_pro")

    listed = client.v1.subscriptions.list(params={"customer": customer.id, "status": "all", "limit": 10})
    assert listed.object == "list" and listed.has_more is False
    assert [s.id for s in listed.data] == [current["id"], old["id"]]  # newest first

    latest = listed.data[0]
    assert isinstance(latest, stripe.Subscription)
    assert latest["items"].data[0].price.id == "price_team"
    assert latest["items"].data[0].current_period_end == period_end
    assert latest.current_period_end == period_end
    assert latest.cancel_at_period_end is True and latest.status == "active"

    default = client.v1.subscriptions.list(params={"customer": customer.id})
    assert [s.id for s in default.data] == [current["id"]]  # canceled hidden, as in Stripe

    page = client.v1.subscriptions.list(params={"customer": customer.id, "status": "all", "limit": 1})
    assert len(page.data) == 1 and page.has_more is True

    assert client.v1.subscriptions.retrieve(old["id"]).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.retrieve("sub_missing")


def test_subscription_auto_paging(fake, client, customer):
    subs = [fake.add_subscription(customer.id, "price_pro") for _ in range(3)]

    listed = client.v1.subscriptions.list(params={"customer": customer.id, "status": "all", "limit": 1})

    assert [s.id for s in listed.auto_paging_iter()] == [s["id"] for s in reversed(subs)]
    pages = fake.requests_to("GET", "/v1/subscriptions")
    assert len(pages) == 3
    assert pages[1].params["starting_after"] == subs[2]["id"]
    assert pages[1].params["customer"] == customer.id


def test_update_subscription_and_trial(fake, client, customer):
    trial_end = int(time.time()) + 14 * 86400
    sub = fake.add_subscription(customer.id, "price_pro", status="trialing", trial_end=trial_end)
    assert client.v1.subscriptions.retrieve(sub["id"]).trial_end == trial_end

    fake.update_subscription(sub["id"], status="past_due", price_id="price_team")

    fetched = client.v1.subscriptions.retrieve(sub["id"])
    assert fetched.status == "past_due"
    assert fetched["items"].data[0].price.id == "price_team"
    assert fake.subscriptions[sub["id"]] is sub  # the stored dict is updated in place


def test_add_subscription_requires_known_customer(fake):
    with pytest.raises(KeyError):
        fake.add_subscription("cus_unknown", "price_pro")


# -- meter events --------------------------------------------------------------------


def test_meter_event_identifier_is_unique(fake, client, customer):
    params = {
        "event_name": "api_requests",
        "payload": {"stripe_customer_id": customer.id, "value": "3"},
        "identifier": "usage-1-2024-06-01T10",
    }
    event = client.v1.billing.meter_events.create(params=params)
    assert event.object == "billing.meter_event"
    assert event.identifier == "usage-1-2024-06-01T10"
    assert event.payload["value"] == "3"

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.billing.meter_events.create(params=params)
    assert excinfo.value.http_status == 400
    assert excinfo.value.param == "identifier"
    assert len(fake.meter_events) == 1
    assert fake.meter_events[0]["payload"] == {"stripe_customer_id": customer.id, "value": "3"}


# -- failure modes ----------------------------------------------------------------


def test_down_raises_api_error(fake, client):
    fake.mode = "down"
    with pytest.raises(stripe.APIError) as excinfo:
        client.v1.customers.create(params={"email": "ada@example.com"})
    assert excinfo.value.http_status == 500
    assert fake.customers == {}


def test_down_is_retried_with_the_same_idempotency_key(fake, make_client):
    fake.mode = "down"
    with pytest.raises(stripe.APIError):
        make_client(max_network_retries=1).v1.customers.create(params={"email": "ada@example.com"})

    attempts = fake.requests_to("POST", "/v1/customers")
    assert len(attempts) == 2
    assert attempts[0].headers["Idempotency-Key"] == attempts[1].headers["Idempotency-Key"]


def test_unavailable_raises_api_connection_error(fake, client):
    fake.mode = "unavailable"
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.retrieve("cus_any")
    assert len(fake.requests_to("GET", "/v1/customers/")) == 1

    fake.mode = "ok"
    client.v1.customers.create(params={"email": "ada@example.com"})  # the pooled connection recovers


def test_slow_times_out_with_a_short_client_timeout(fake, make_client):
    fake.mode = "slow"
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError, match="ReadTimeout"):
        make_client(timeout=0.5).v1.customers.create(params={"email": "ada@example.com"})
    # Not a measurement: the fake holds the call 10 s, and half of that tells the two apart on any
    # machine.
    assert time.monotonic() - started < 5


def test_slow_answers_normally_within_the_timeout(fake, make_client):
    fake.mode, fake.delay = "slow", 0.2
    customer = make_client(timeout=5).v1.customers.create(params={"email": "ada@example.com"})
    assert customer.id in fake.customers


def test_new_default_http_client_is_requests_with_timeout():
    http_client = stripe.new_default_http_client(timeout=0.5)
    assert isinstance(http_client, stripe.RequestsClient)
    assert http_client._timeout == 0.5


def test_bad_api_key_is_rejected(make_client):
    with pytest.raises(stripe.AuthenticationError) as excinfo:
        make_client(api_key="pk_test_publishable").v1.customers.create(params={"email": "a@example.com"})
    assert excinfo.value.http_status == 401


# -- raw HTTP shape ------------------------------------------------------------------


def test_raw_responses_look_like_stripe(fake):
    auth = {"Authorization": f"Bearer {API_KEY}"}

    ok = requests.post(f"{fake.url}/v1/customers", data={"email": "a@example.com"}, headers=auth, timeout=5)
    assert ok.status_code == 200
    assert ok.headers["Content-Type"] == "application/json"
    assert ok.headers["Request-Id"].startswith("req_")
    assert ok.json()["object"] == "customer" and ok.json()["created"] > 0

    unknown = requests.get(f"{fake.url}/v1/invoices", headers=auth, timeout=5)
    assert unknown.status_code == 404
    assert unknown.headers["Request-Id"].startswith("req_")
    assert unknown.json()["error"]["type"] == "invalid_request_error"
    assert unknown.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/invoices)")

    wrong_method = requests.delete(f"{fake.url}/v1/checkout/sessions", headers=auth, timeout=5)
    assert wrong_method.status_code == 404

    unauthorized = requests.get(f"{fake.url}/v1/subscriptions", timeout=5)
    assert unauthorized.status_code == 401
    assert unauthorized.json() == {
        "error": {
            "type": "invalid_request_error",
            "message": "Invalid API Key provided",
            "request_log_url": unauthorized.json()["error"]["request_log_url"],
        }
    }


def test_decode_form_builds_nested_dicts_and_lists():
    pairs = [
        ("metadata[user_id]", "1"),
        ("line_items[0][price]", "price_pro"),
        ("line_items[0][quantity]", "1"),
        ("line_items[1][price]", "price_team"),
        ("expand[0]", "data.customer"),
        ("email", ""),
    ]
    assert decode_form(pairs) == {
        "metadata": {"user_id": "1"},
        "line_items": [{"price": "price_pro", "quantity": "1"}, {"price": "price_team"}],
        "expand": ["data.customer"],
        "email": "",
    }


def test_reset_clears_state_and_mode(fake, client, customer):
    fake.mode, fake.delay = "down", 1
    fake.prices.add("price_extra")

    fake.reset()

    assert (fake.mode, fake.delay) == ("ok", 10)
    assert fake.customers == {} and fake.requests == [] and fake.meter_events == []
    assert fake.prices == {"price_pro", "price_team"}


# -- webhooks ------------------------------------------------------------------------


WEBHOOK_SECRET = "whsec_test_secret"


def test_signed_event_is_accepted_by_the_sdk(fake, customer):
    sub = fake.add_subscription(customer.id, "price_pro")
    event = make_event("customer.subscription.updated", sub)
    payload = json.dumps(event).encode()

    constructed = stripe.Webhook.construct_event(payload, sign_payload(payload, WEBHOOK_SECRET), WEBHOOK_SECRET)

    assert constructed.id.startswith("evt_")
    assert constructed.type == "customer.subscription.updated"
    assert constructed.livemode is False
    assert constructed.data.object.id == sub["id"]
    assert constructed.data.object["items"].data[0].price.id == "price_pro"


def test_signature_matches_the_sdk_and_stale_timestamps_are_rejected():
    payload = json.dumps(make_event("invoice.paid", {"id": "in_1", "object": "invoice"}, event_id="evt_1", created=1))
    assert sign_payload(payload, WEBHOOK_SECRET, 1700000000) == (
        stripe.WebhookSignature.generate_signature_header(payload, WEBHOOK_SECRET, 1700000000)
    )

    stale = sign_payload(payload.encode(), WEBHOOK_SECRET, timestamp=int(time.time()) - 400)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, WEBHOOK_SECRET)

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sign_payload(payload, "whsec_other"), WEBHOOK_SECRET)


def test_open_checkout_sessions_are_listed_per_customer_and_can_be_expired_once(fake, client, customer):
    other = client.v1.customers.create(params={"email": "bob@example.com"})
    first = client.v1.checkout.sessions.create(params=checkout_params(customer.id))
    second = client.v1.checkout.sessions.create(params=checkout_params(customer.id))
    client.v1.checkout.sessions.create(params=checkout_params(other.id))
    fake.complete_checkout_session(first.id)

    listed = client.v1.checkout.sessions.list(params={"customer": customer.id, "status": "open"})
    assert [session.id for session in listed.data] == [second.id]

    expired = client.v1.checkout.sessions.expire(second.id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError, match="status"):
        client.v1.checkout.sessions.expire(second.id)
    assert client.v1.checkout.sessions.list(params={"customer": customer.id, "status": "open"}).data == []
