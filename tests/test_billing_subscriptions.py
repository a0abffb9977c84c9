"""Plans, the caller's subscription, the user's plan, plan gating with past_due grace, and sync."""
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from saas.billing.entitlements import refresh_plan
from saas.billing.models import Subscription
from saas.extensions import db
from saas.users.models import User
from tests.billing_support import (
    customer_user,
    deliver_ok,
    invoice_for,
    stored_subscription,
    subscribe,
)
from tests.conftest import make_app
from tests.helpers import bearer
from tests.fake_stripe import make_event

PRO_FEATURE = "/api/v1/billing/pro-feature"
SUBSCRIPTION = "/api/v1/billing/subscription"


def me(client, token):
    return client.get("/api/v1/users/me", headers=bearer(token)).get_json()


def set_past_due_since(stripe_subscription_id, days_ago):
    """As if the subscription had gone past_due ``days_ago``, everywhere billing keeps that."""
    subscription = db.session.scalar(
        sa.select(Subscription).where(Subscription.stripe_subscription_id == stripe_subscription_id)
    )
    subscription.past_due_since = datetime.now(timezone.utc) - timedelta(days=days_ago)
    refresh_plan(db.session.get(User, subscription.user_id).personal_org)
    db.session.commit()


# -- plans -------------------------------------------------------------------------------------


def test_plans_are_listed_publicly_in_their_configured_order(client):
    response = client.get("/api/v1/billing/plans")

    assert response.status_code == 200
    assert response.get_json() == [{"plan": "pro", "price_id": "price_pro"}, {"plan": "team", "price_id": "price_team"}]


def test_without_configured_plans_the_list_is_empty(database):
    client = make_app(STRIPE_PLANS=" ").test_client()

    assert client.get("/api/v1/billing/plans").get_json() == []


# -- the caller's subscription -----------------------------------------------------------------


def test_without_a_subscription_the_plan_is_free_and_the_status_none(client, tokens):
    response = client.get(SUBSCRIPTION, headers=bearer(tokens["access_token"]))

    assert response.status_code == 200
    assert response.get_json() == {
        "plan": "free", "status": "none", "price_id": None, "current_period_end": None,
        "cancel_at_period_end": False, "trial_end": None, "has_access": False, "grace_period_end": None,
        "seats": None,
    }
    assert me(client, tokens["access_token"])["plan"] == "free"


def test_the_subscription_needs_a_valid_access_token(client):
    assert client.get(SUBSCRIPTION).status_code == 401
    assert client.get(SUBSCRIPTION, headers=bearer("not-a-token")).status_code == 401


def test_an_active_subscription_is_reported_with_stripes_dates(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user, "price_team", cancel_at_period_end=True)

    body = inline_client.get(SUBSCRIPTION, headers=bearer(token)).get_json()

    period_end = subscription["items"]["data"][0]["current_period_end"]
    assert body == {
        "plan": "team", "status": "active", "price_id": "price_team",
        "current_period_end": datetime.fromtimestamp(period_end, timezone.utc).isoformat(),
        "cancel_at_period_end": True, "trial_end": None, "has_access": True, "grace_period_end": None,
        "seats": None,  # team is not per seat unless STRIPE_SEAT_PLANS names it
    }
    assert me(inline_client, token)["plan"] == "team"


def test_a_trial_is_reported_with_its_end(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    trial_end = int(time.time()) + 7 * 86400
    subscribe(inline_client, fake_stripe, user, status="trialing", trial_end=trial_end)

    body = inline_client.get(SUBSCRIPTION, headers=bearer(token)).get_json()

    assert (body["plan"], body["status"], body["has_access"]) == ("pro", "trialing", True)
    assert body["trial_end"] == datetime.fromtimestamp(trial_end, timezone.utc).isoformat()
    assert me(inline_client, token)["plan"] == "pro"


def test_a_canceled_subscription_leaves_the_user_on_free(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user)
    fake_stripe.update_subscription(subscription["id"], status="canceled")
    deliver_ok(inline_client, make_event("customer.subscription.deleted", subscription))

    assert inline_client.get(SUBSCRIPTION, headers=bearer(token)).get_json()["status"] == "none"
    assert me(inline_client, token)["plan"] == "free"


def test_the_subscription_that_grants_access_is_the_one_shown(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscribe(inline_client, fake_stripe, user, "price_pro", status="active")
    subscribe(inline_client, fake_stripe, user, "price_team", status="incomplete")

    body = inline_client.get(SUBSCRIPTION, headers=bearer(token)).get_json()

    assert (body["plan"], body["status"]) == ("pro", "active")


def test_a_price_outside_stripe_plans_has_no_plan_name_and_gives_no_plan(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscribe(inline_client, fake_stripe, user, "price_legacy")

    body = inline_client.get(SUBSCRIPTION, headers=bearer(token)).get_json()

    assert (body["plan"], body["price_id"], body["status"]) == (None, "price_legacy", "active")
    assert me(inline_client, token)["plan"] == "free"
    assert inline_client.get(PRO_FEATURE, headers=bearer(token)).status_code == 402


# -- plan gating -------------------------------------------------------------------------------


def test_the_paid_feature_needs_a_token(client):
    assert client.get(PRO_FEATURE).status_code == 401


def test_a_free_user_gets_402_saying_which_plan_is_needed(client, tokens):
    response = client.get(PRO_FEATURE, headers=bearer(tokens["access_token"]))

    assert response.status_code == 402
    body = response.get_json()
    assert body["code"] == 402 and "pro or team" in body["message"]
    assert body["errors"] == {"required_plans": ["pro", "team"], "current_plan": "free"}


@pytest.mark.parametrize(("price_id", "status"), [("price_pro", "active"), ("price_team", "active"), ("price_pro", "trialing")])
def test_a_paid_plan_opens_the_paid_feature(inline_client, fake_stripe, price_id, status):
    user, token = customer_user(inline_client, fake_stripe)
    subscribe(inline_client, fake_stripe, user, price_id, status=status)

    response = inline_client.get(PRO_FEATURE, headers=bearer(token))

    assert response.status_code == 200
    assert response.get_json()["plan"] == price_id.removeprefix("price_")


@pytest.mark.parametrize("status", ["unpaid", "incomplete", "paused", "canceled", "incomplete_expired"])
def test_a_subscription_that_is_not_paid_up_gets_402(inline_client, fake_stripe, status):
    user, token = customer_user(inline_client, fake_stripe)
    subscribe(inline_client, fake_stripe, user, status=status)

    response = inline_client.get(PRO_FEATURE, headers=bearer(token))

    assert response.status_code == 402
    assert response.get_json()["errors"]["current_plan"] == "free"


def test_past_due_keeps_access_during_the_grace_period_then_loses_it(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user)
    fake_stripe.update_subscription(subscription["id"], status="past_due")
    deliver_ok(inline_client, make_event("invoice.payment_failed", invoice_for(subscription, status="open")))

    assert inline_client.get(PRO_FEATURE, headers=bearer(token)).status_code == 200
    body = inline_client.get(SUBSCRIPTION, headers=bearer(token)).get_json()
    assert (body["status"], body["has_access"]) == ("past_due", True)
    grace_end = datetime.fromisoformat(body["grace_period_end"])
    assert timedelta(days=6, hours=23) < grace_end - datetime.now(timezone.utc) <= timedelta(days=7)

    set_past_due_since(subscription["id"], days_ago=7.01)  # the default BILLING_PAST_DUE_GRACE_DAYS is 7
    assert inline_client.get(PRO_FEATURE, headers=bearer(token)).status_code == 402
    assert me(inline_client, token)["plan"] == "free"
    assert inline_client.get(SUBSCRIPTION, headers=bearer(token)).get_json()["has_access"] is False


def test_the_grace_period_is_configurable(database, inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscribe(inline_client, fake_stripe, user, status="past_due")
    no_grace = make_app(REDIS_URL="", BILLING_PAST_DUE_GRACE_DAYS="0").test_client()
    long_grace = make_app(REDIS_URL="", BILLING_PAST_DUE_GRACE_DAYS="30").test_client()
    set_past_due_since(db.session.scalar(sa.select(Subscription.stripe_subscription_id)), days_ago=10)

    assert no_grace.get(PRO_FEATURE, headers=bearer(token)).status_code == 402
    assert long_grace.get(PRO_FEATURE, headers=bearer(token)).status_code == 200
    assert inline_client.get(PRO_FEATURE, headers=bearer(token)).status_code == 402


def test_the_grace_period_starts_when_past_due_is_first_seen_and_ends_with_payment(inline_client, fake_stripe):
    user, token = customer_user(inline_client, fake_stripe)
    subscription = subscribe(inline_client, fake_stripe, user, status="past_due")
    set_past_due_since(subscription["id"], days_ago=3)

    deliver_ok(inline_client, make_event("customer.subscription.updated", subscription))
    first_seen = stored_subscription(subscription["id"]).past_due_since
    assert datetime.now(timezone.utc) - first_seen > timedelta(days=2)  # a repeat does not restart it

    fake_stripe.update_subscription(subscription["id"], status="active")
    deliver_ok(inline_client, make_event("invoice.paid", invoice_for(subscription)))
    assert stored_subscription(subscription["id"]).past_due_since is None


# -- sync --------------------------------------------------------------------------------------


def sync(app):
    return app.test_cli_runner().invoke(args=["billing", "sync"])


def test_sync_makes_local_subscriptions_match_stripe_for_every_customer(inline_app, inline_client, fake_stripe):
    ada, ada_token = customer_user(inline_client, fake_stripe, "ada@example.com")
    bob, bob_token = customer_user(inline_client, fake_stripe, "bob@example.com")
    changed = subscribe(inline_client, fake_stripe, ada, "price_pro")
    vanished = subscribe(inline_client, fake_stripe, ada, "price_team", status="trialing")
    fake_stripe.update_subscription(changed["id"], status="past_due", cancel_at_period_end=True)
    del fake_stripe.subscriptions[vanished["id"]]
    missed = fake_stripe.add_subscription(bob["stripe_customer_id"], "price_team")  # its webhook was lost

    result = sync(inline_app)

    assert result.exit_code == 0, result.output
    assert "synced 2 customers, 0 failed" in result.output
    ada_pro = stored_subscription(changed["id"])
    assert (ada_pro.status, ada_pro.cancel_at_period_end, ada_pro.past_due_since is not None) == ("past_due", True, True)
    assert stored_subscription(vanished["id"]).status == "canceled"
    bob_team = stored_subscription(missed["id"])
    assert (bob_team.user_id, bob_team.plan, bob_team.status) == (bob["id"], "team", "active")
    assert me(inline_client, bob_token)["plan"] == "team"


def test_sync_pages_through_many_subscriptions(inline_app, inline_client, fake_stripe):
    user, _ = customer_user(inline_client, fake_stripe)
    for _ in range(105):
        fake_stripe.add_subscription(user["stripe_customer_id"], "price_pro", status="canceled")

    assert sync(inline_app).exit_code == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 105


def test_sync_reports_a_failure_and_exits_1(inline_app, inline_client, fake_stripe):
    customer_user(inline_client, fake_stripe)
    fake_stripe.mode = "down"

    result = sync(inline_app)

    assert result.exit_code == 1
    assert "synced 0 customers, 1 failed" in result.output
