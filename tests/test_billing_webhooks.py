"""POST /api/v1/billing/webhook: verified, stored once, applied once, in any order of arrival."""
import json
import threading
import time

import pytest
import sqlalchemy as sa
from rq import Queue

from saas.billing.models import StripeEvent, Subscription
from saas.extensions import db
from saas.users.models import User
from tests.billing_support import (
    WEBHOOK,
    customer_user,
    deliver,
    deliver_ok,
    invoice_for,
    stored_events,
    stored_subscription,
    subscribe,
)
from tests.conftest import REDIS_URL, WEBHOOK_SECRET, make_app
from tests.fake_stripe import make_event, sign_payload
from tests.helpers import bearer
from tests.servers import run_rq_worker_burst

OLD_SECRET = "whsec_the_secret_being_rolled_out"


def subscription_retrievals(fake_stripe, subscription_id):
    return fake_stripe.requests_to("GET", f"/v1/subscriptions/{subscription_id}")


# -- verification ----------------------------------------------------------------------------


def test_a_signed_event_is_acknowledged_and_stored(inline_client):
    event = make_event("customer.created", {"id": "cus_x", "object": "customer"})

    response = deliver(inline_client, event)

    assert response.status_code == 200
    assert response.get_json() == {"received": True, "duplicate": False}
    [stored] = stored_events()
    assert (stored.id, stored.type, stored.payload, stored.stripe_created) == (
        event["id"], "customer.created", event, event["created"],
    )
    assert stored.received_at is not None


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "garbage",
        "t=notanumber,v1=abc",
        "v1=abc",
        "t=1700000000",
    ],
    ids=["missing", "empty", "garbage", "bad-timestamp", "no-timestamp", "no-v1"],
)
def test_a_missing_or_malformed_signature_is_400_and_nothing_is_stored(inline_client, signature):
    headers = {} if signature is None else {"Stripe-Signature": signature}
    body = json.dumps(make_event("customer.subscription.updated", {"id": "sub_x"}))

    response = inline_client.post(WEBHOOK, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 400
    assert response.get_json()["code"] == 400
    assert stored_events() == []


def test_a_signature_made_with_another_secret_is_400(inline_client):
    response = deliver(inline_client, make_event("customer.deleted", {"id": "cus_x"}), secret="whsec_wrong")

    assert response.status_code == 400
    assert "signature" in response.get_json()["message"].lower()
    assert stored_events() == []


def test_a_body_changed_after_signing_is_400(inline_client):
    event = make_event("customer.deleted", {"id": "cus_x"})
    body = json.dumps(event)
    signature = sign_payload(body, WEBHOOK_SECRET)

    response = inline_client.post(
        WEBHOOK, data=body.replace("cus_x", "cus_y"), content_type="application/json",
        headers={"Stripe-Signature": signature},
    )

    assert response.status_code == 400
    assert stored_events() == []


def test_a_signature_older_than_stripes_300_second_tolerance_is_400(inline_client):
    stale = deliver(inline_client, make_event("customer.deleted", {"id": "cus_x"}), timestamp=time.time() - 310)
    recent = deliver(inline_client, make_event("customer.deleted", {"id": "cus_y"}), timestamp=time.time() - 280)

    assert stale.status_code == 400
    assert recent.status_code == 200
    assert [event.payload["data"]["object"]["id"] for event in stored_events()] == ["cus_y"]


def test_during_a_secret_roll_any_matching_v1_signature_is_accepted(inline_client):
    event = make_event("customer.deleted", {"id": "cus_x"})
    body = json.dumps(event)
    timestamp = int(time.time())
    ours = sign_payload(body, WEBHOOK_SECRET, timestamp).split(",")[1]
    other = sign_payload(body, OLD_SECRET, timestamp).split(",")[1]

    both = inline_client.post(
        WEBHOOK, data=body, content_type="application/json",
        headers={"Stripe-Signature": f"t={timestamp},{other},{ours}"},
    )
    only_other = inline_client.post(
        WEBHOOK, data=body, content_type="application/json",
        headers={"Stripe-Signature": f"t={timestamp},{other}"},
    )

    assert both.status_code == 200
    assert only_other.status_code == 400


def test_several_configured_secrets_are_each_accepted_while_rotating(database):
    client = make_app(REDIS_URL="", STRIPE_WEBHOOK_SECRET=f"{WEBHOOK_SECRET}, {OLD_SECRET}").test_client()

    new = deliver(client, make_event("customer.deleted", {"id": "cus_new"}), secret=WEBHOOK_SECRET)
    old = deliver(client, make_event("customer.deleted", {"id": "cus_old"}), secret=OLD_SECRET)
    neither = deliver(client, make_event("customer.deleted", {"id": "cus_no"}), secret="whsec_wrong")
    stale = deliver(client, make_event("customer.deleted", {"id": "cus_st"}), secret=OLD_SECRET, timestamp=time.time() - 600)

    assert (new.status_code, old.status_code, neither.status_code, stale.status_code) == (200, 200, 400, 400)


def test_without_a_webhook_secret_configured_the_endpoint_is_503_and_stores_nothing(inline_client):
    client = make_app(REDIS_URL="", STRIPE_WEBHOOK_SECRET="").test_client()

    response = deliver(client, make_event("customer.deleted", {"id": "cus_x"}))

    assert response.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in response.get_json()["message"]
    assert stored_events() == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"id": "evt_1", "type": ', "[]".encode(), b'{"id": "evt_1"}', b'{"id": 1, "type": "x", "data": {"object": {}}}',
     b'{"id": "evt_1", "type": "customer.deleted", "data": {}}', b"\xff\xfe"],
    ids=["text", "truncated", "array", "no-type", "id-not-string", "no-object", "not-utf8"],
)
def test_a_signed_body_that_is_not_a_json_event_is_400(inline_client, body):
    signature = sign_payload(body, WEBHOOK_SECRET) if body != b"\xff\xfe" else f"t={int(time.time())},v1=00"

    response = inline_client.post(WEBHOOK, data=body, content_type="application/json", headers={"Stripe-Signature": signature})

    assert response.status_code == 400
    assert response.is_json
    assert stored_events() == []


# -- storing and applying once ------------------------------------------------------------------


def test_an_unknown_event_type_gets_200_and_nothing_else(client, fake_stripe, redis_client):
    response = deliver(client, make_event("radar.early_fraud_warning.created", {"id": "issfr_1"}))

    assert response.status_code == 200
    assert Queue("high", connection=redis_client).count == 0
    assert fake_stripe.requests == []
    [stored] = stored_events()
    assert stored.processed_at is not None and stored.attempts == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0


def test_a_redelivered_event_is_acknowledged_but_applied_once(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    event = make_event("customer.subscription.created", subscription)

    first = deliver_ok(inline_client, event)
    again = deliver_ok(inline_client, event)

    assert (first["duplicate"], again["duplicate"]) == (False, True)
    [stored] = stored_events()
    assert stored.attempts == 1 and stored.processed_at is not None
    assert len(subscription_retrievals(fake_stripe, subscription["id"])) == 1


def test_the_same_event_delivered_concurrently_is_stored_and_applied_once(inline_app, inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    body = json.dumps(make_event("customer.subscription.created", subscription))
    deliveries = 8
    barrier = threading.Barrier(deliveries)
    results = []

    def deliver_in_own_client():
        client = inline_app.test_client()
        headers = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET)}
        barrier.wait()
        response = client.post(WEBHOOK, data=body, content_type="application/json", headers=headers)
        results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=deliver_in_own_client) for _ in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [status for status, _ in results] == [200] * deliveries
    assert sorted(body["duplicate"] for _, body in results) == [False] + [True] * (deliveries - 1)
    [stored] = stored_events()
    assert stored.attempts == 1 and stored.processing_error is None
    assert len(subscription_retrievals(fake_stripe, subscription["id"])) == 1
    assert stored_subscription(subscription["id"]).status == "active"


def test_different_events_about_a_new_subscription_arriving_together_store_one_row(inline_app, inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro", metadata={"user_id": str(user["id"])})
    events = [
        make_event("customer.subscription.created", subscription),
        make_event("customer.subscription.updated", subscription),
        make_event("invoice.paid", invoice_for(subscription)),
        make_event("checkout.session.completed", {
            "id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
            "customer": user["stripe_customer_id"], "subscription": subscription["id"],
            "client_reference_id": str(user["id"]),
        }),
    ]
    barrier = threading.Barrier(len(events))
    statuses = []

    def deliver_in_own_client(event):
        client = inline_app.test_client()
        barrier.wait()
        statuses.append(deliver(client, event).status_code)

    threads = [threading.Thread(target=deliver_in_own_client, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert statuses == [200] * len(events)
    assert [(event.processed_at is not None, event.processing_error) for event in stored_events()] == [(True, None)] * 4
    rows = db.session.scalars(sa.select(Subscription)).all()
    assert [(row.stripe_subscription_id, row.user_id, row.plan) for row in rows] == [(subscription["id"], user["id"], "pro")]


# -- what each event type does ---------------------------------------------------------------


def test_checkout_session_completed_stores_the_new_subscription(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    checkout = inline_client.post(
        "/api/v1/billing/create-checkout-session", json={"plan": "team"}, headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_team", metadata={"user_id": str(user["id"])})
    session = fake_stripe.checkout_sessions[checkout["session_id"]]
    session.update(status="complete", payment_status="paid", subscription=subscription["id"])

    deliver_ok(inline_client, make_event("checkout.session.completed", session))

    stored = stored_subscription(subscription["id"])
    assert (stored.user_id, stored.plan, stored.price_id, stored.status) == (user["id"], "team", "price_team", "active")
    assert stored.stripe_customer_id == user["stripe_customer_id"]


def test_a_one_time_payment_checkout_changes_no_subscription(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    session = {"id": "cs_test_pay", "object": "checkout.session", "mode": "payment", "subscription": None,
               "customer": user["stripe_customer_id"], "client_reference_id": str(user["id"])}

    deliver_ok(inline_client, make_event("checkout.session.completed", session))

    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 0
    assert stored_events()[-1].processed_at is not None


@pytest.mark.parametrize(
    "event_type",
    ["customer.subscription.created", "customer.subscription.updated", "customer.subscription.trial_will_end",
     "customer.subscription.paused", "customer.subscription.resumed"],
)
def test_subscription_events_store_what_stripe_says_now(inline_client, fake_stripe, event_type):
    user, _ = customer_user(inline_client, fake_stripe)
    trial_end = int(time.time()) + 3 * 86400
    subscription = fake_stripe.add_subscription(
        user["stripe_customer_id"], "price_pro", status="trialing", trial_end=trial_end, cancel_at_period_end=True
    )

    deliver_ok(inline_client, make_event(event_type, subscription))

    stored = stored_subscription(subscription["id"])
    item = subscription["items"]["data"][0]
    assert stored.user_id == user["id"]
    assert (stored.status, stored.plan, stored.price_id, stored.cancel_at_period_end) == ("trialing", "pro", "price_pro", True)
    assert int(stored.trial_end.timestamp()) == trial_end
    assert int(stored.current_period_end.timestamp()) == item["current_period_end"]
    assert stored_events()[-1].processed_at is not None


def test_subscription_deleted_marks_it_canceled(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user)
    fake_stripe.update_subscription(subscription["id"], status="canceled")

    deliver_ok(inline_client, make_event("customer.subscription.deleted", subscription))

    assert stored_subscription(subscription["id"]).status == "canceled"


def test_invoice_payment_failed_makes_it_past_due_and_invoice_paid_active_again(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user)

    fake_stripe.update_subscription(subscription["id"], status="past_due")
    deliver_ok(inline_client, make_event("invoice.payment_failed", invoice_for(subscription, status="open")))
    past_due = stored_subscription(subscription["id"])
    assert past_due.status == "past_due" and past_due.past_due_since is not None

    fake_stripe.update_subscription(subscription["id"], status="active")
    deliver_ok(inline_client, make_event("invoice.paid", invoice_for(subscription)))
    paid = stored_subscription(subscription["id"])
    assert paid.status == "active" and paid.past_due_since is None


def test_invoice_events_read_the_pre_2025_subscription_field_too(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    invoice = {"id": "in_old", "object": "invoice", "customer": user["stripe_customer_id"], "subscription": subscription["id"]}

    deliver_ok(inline_client, make_event("invoice.paid", invoice))

    assert stored_subscription(subscription["id"]).status == "active"


def test_an_invoice_without_subscription_changes_nothing(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    invoice = {"id": "in_once", "object": "invoice", "customer": user["stripe_customer_id"], "parent": None}

    deliver_ok(inline_client, make_event("invoice.paid", invoice))

    assert stored_events()[-1].processed_at is not None
    assert fake_stripe.requests_to("GET", "/v1/subscriptions") == []


def test_customer_deleted_cancels_its_subscriptions_and_frees_the_user(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user)
    fake_stripe.delete_customer(user["stripe_customer_id"])

    deliver_ok(inline_client, make_event("customer.deleted", {"id": user["stripe_customer_id"], "object": "customer"}))

    assert stored_subscription(subscription["id"]).status == "canceled"
    assert db.session.get(User, user["id"]).stripe_customer_id is None
    # A late event about the subscription still finds its owner, and Stripe's final state.
    deliver_ok(inline_client, make_event("customer.subscription.updated", subscription))
    assert stored_subscription(subscription["id"]).status == "canceled"
    db.session.expire_all()
    assert db.session.get(User, user["id"]).stripe_customer_id is None  # the deleted customer stays unlinked


def test_a_subscription_of_a_customer_we_never_linked_is_attributed_through_our_metadata(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    db.session.execute(sa.update(User).where(User.id == user["id"]).values(stripe_customer_id=None))
    db.session.commit()
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro", metadata={"user_id": str(user["id"])})

    deliver_ok(inline_client, make_event("customer.subscription.created", subscription))

    assert stored_subscription(subscription["id"]).user_id == user["id"]
    assert db.session.get(User, user["id"]).stripe_customer_id == user["stripe_customer_id"]


def test_a_subscription_of_a_stranger_is_ignored(inline_client, fake_stripe):
    stranger = fake_stripe.add_customer(email="someone@else.example")
    subscription = fake_stripe.add_subscription(stranger["id"], "price_pro")

    deliver_ok(inline_client, make_event("customer.subscription.created", subscription))

    assert stored_subscription(subscription["id"]) is None
    assert stored_events()[-1].processed_at is not None


# -- out of order ------------------------------------------------------------------------------


def stale_and_fresh_events(fake_stripe, subscription, fresh_type, **change):
    """An `updated` event, then Stripe changes the subscription and sends ``fresh_type``."""
    now = int(time.time())
    stale = make_event("customer.subscription.updated", subscription, created=now - 60)
    fake_stripe.update_subscription(subscription["id"], **change)
    return stale, make_event(fresh_type, subscription, created=now)


@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_out_of_order_updates_end_in_stripes_latest_state(inline_client, fake_stripe, order):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    older, newer = stale_and_fresh_events(
        fake_stripe, subscription, "customer.subscription.updated", price_id="price_team", cancel_at_period_end=True
    )
    assert older["data"]["object"]["items"]["data"][0]["price"]["id"] == "price_pro"

    for event in ([older, newer] if order == "oldest-first" else [newer, older]):
        deliver_ok(inline_client, event)
        stored = stored_subscription(subscription["id"])
        assert (stored.plan, stored.cancel_at_period_end) == ("team", True)


@pytest.mark.parametrize("order", ["updated-then-deleted", "deleted-then-updated"])
def test_a_late_update_never_revives_a_deleted_subscription(inline_client, fake_stripe, order):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    updated, deleted = stale_and_fresh_events(fake_stripe, subscription, "customer.subscription.deleted", status="canceled")

    for event in ([updated, deleted] if order == "updated-then-deleted" else [deleted, updated]):
        deliver_ok(inline_client, event)
        assert stored_subscription(subscription["id"]).status == "canceled"


def test_a_subscription_that_stripe_no_longer_has_is_marked_canceled(inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user)
    del fake_stripe.subscriptions[subscription["id"]]

    deliver_ok(inline_client, make_event("customer.subscription.updated", subscription))

    assert stored_subscription(subscription["id"]).status == "canceled"


# -- failures are recorded and retried --------------------------------------------------------


def test_a_failing_application_is_recorded_and_replayed_by_the_cli(inline_app, inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    fake_stripe.mode = "down"

    response = deliver(inline_client, make_event("customer.subscription.created", subscription))

    assert response.status_code == 200  # stored: Stripe must not resend it, we retry ourselves
    [failed] = stored_events()
    assert failed.processed_at is None and failed.attempts == 1
    assert "StripeRejected" in failed.processing_error
    assert stored_subscription(subscription["id"]) is None

    still_down = inline_app.test_cli_runner().invoke(args=["billing", "replay-events"])
    assert still_down.exit_code == 1
    assert f"event {failed.id}" in still_down.output
    assert stored_events()[0].attempts == 2

    fake_stripe.mode = "ok"
    replayed = inline_app.test_cli_runner().invoke(args=["billing", "replay-events"])
    assert replayed.exit_code == 0, replayed.output
    assert "applied 1 events, 0 failed" in replayed.output
    [applied] = stored_events()
    assert applied.processed_at is not None and applied.processing_error is None and applied.attempts == 3
    assert stored_subscription(subscription["id"]).status == "active"


def test_an_event_stored_while_redis_was_down_is_applied_when_stripe_retries(database, inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    event = make_event("customer.subscription.created", subscription)
    no_redis = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://").test_client()

    first = deliver(no_redis, event)
    assert first.status_code == 503  # so Stripe delivers it again
    assert stored_events()[0].processed_at is None

    retry = deliver_ok(inline_client, event)
    assert retry["duplicate"] is True
    assert stored_events()[0].processed_at is not None
    assert stored_subscription(subscription["id"]).status == "active"


# -- through a real rq worker ------------------------------------------------------------------


def test_with_redis_the_event_is_acknowledged_at_once_and_a_real_rq_worker_applies_it(client, fake_stripe, redis_client):
    user, _ = customer_user(client, fake_stripe)
    Queue("high", connection=redis_client).empty()  # the signup's customer job
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro", status="trialing")
    event = make_event("customer.subscription.created", subscription)

    assert deliver_ok(client, event)["duplicate"] is False
    assert deliver_ok(client, event)["duplicate"] is True  # not applied yet: queued again
    assert stored_subscription(subscription["id"]) is None
    assert Queue("high", connection=redis_client).count == 2

    result = run_rq_worker_burst(REDIS_URL=REDIS_URL)
    assert result.returncode == 0, result.stdout + result.stderr

    stored = stored_subscription(subscription["id"])
    assert (stored.user_id, stored.status, stored.plan) == (user["id"], "trialing", "pro")
    [applied] = stored_events()
    assert applied.attempts == 1 and applied.processed_at is not None
    assert len(subscription_retrievals(fake_stripe, subscription["id"])) == 1


def test_a_job_that_fails_in_the_worker_is_recorded_and_scheduled_for_retry(client, fake_stripe, redis_client):
    user, _ = customer_user(client, fake_stripe)
    queue = Queue("high", connection=redis_client)
    queue.empty()
    subscription = fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro")
    deliver_ok(client, make_event("customer.subscription.created", subscription))
    job_id = queue.job_ids[0]
    fake_stripe.mode = "down"

    result = run_rq_worker_burst(REDIS_URL=REDIS_URL)
    assert result.returncode == 0, result.stdout + result.stderr

    assert queue.fetch_job(job_id).get_status() == "scheduled"
    [failed] = stored_events()
    assert failed.processed_at is None and failed.attempts == 1 and "StripeRejected" in failed.processing_error


def test_after_its_customer_is_deleted_billing_works_again_with_a_new_customer(inline_client, fake_stripe):
    """Stripe replays a request's answer for 24 hours per idempotency key: reusing the signup's
    key would bring back the deleted customer and make every billing call fail."""
    user, token = customer_user(inline_client, fake_stripe)
    deleted = user["stripe_customer_id"]
    fake_stripe.delete_customer(deleted)
    deliver_ok(inline_client, make_event("customer.deleted", {"id": deleted, "object": "customer"}))

    portal = inline_client.get("/api/v1/billing/customer-portal", headers=bearer(token))

    assert portal.status_code == 200
    replacement = inline_client.get("/api/v1/users/me", headers=bearer(token)).get_json()["stripe_customer_id"]
    assert replacement not in (None, deleted) and not fake_stripe.customers[replacement].get("deleted")
    keys = [request.headers["Idempotency-Key"] for request in fake_stripe.requests_to("POST", "/v1/customers")]
    assert len(keys) == 2 and len(set(keys)) == 2
