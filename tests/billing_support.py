"""Helpers for the billing tests: signed webhook deliveries and users with Stripe customers."""
import json

import sqlalchemy as sa

from saas.billing.models import StripeEvent, Subscription
from saas.extensions import db
from tests.conftest import WEBHOOK_SECRET
from tests.helpers import bearer, sign_up
from tests.fake_stripe import make_event, new_id, sign_payload

WEBHOOK = "/api/v1/billing/webhook"


def deliver(client, event, secret=WEBHOOK_SECRET, timestamp=None):
    """POST ``event`` to the webhook, signed as Stripe signs it."""
    body = json.dumps(event)
    return client.post(
        WEBHOOK,
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, secret, timestamp)},
    )


def deliver_ok(client, event):
    response = deliver(client, event)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def customer_user(client, fake_stripe, email="payer@example.com"):
    """A registered user with a Stripe customer (created on demand by the portal endpoint).

    Returns (user as GET /users/me shows it, access token).
    """
    token = sign_up(client, email)
    assert client.get("/api/v1/billing/customer-portal", headers=bearer(token)).status_code == 200
    user = client.get("/api/v1/users/me", headers=bearer(token)).get_json()
    assert user["stripe_customer_id"] in fake_stripe.customers
    return user, token


def subscribe(client, fake_stripe, user, price_id="price_pro", **state):
    """Create the subscription in Stripe and deliver its `created` event; returns Stripe's object."""
    subscription = fake_stripe.add_subscription(
        user["stripe_customer_id"], price_id, metadata={"user_id": str(user["id"])}, **state
    )
    deliver_ok(client, make_event("customer.subscription.created", subscription))
    return subscription


def invoice_for(subscription, status="paid"):
    return {
        "id": new_id("in"),
        "object": "invoice",
        "customer": subscription["customer"],
        "status": status,
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": subscription["id"], "metadata": subscription["metadata"]},
        },
    }


def stored_subscription(stripe_subscription_id):
    db.session.expire_all()
    return db.session.scalar(
        sa.select(Subscription).where(Subscription.stripe_subscription_id == stripe_subscription_id)
    )


def stored_events():
    db.session.expire_all()
    return db.session.scalars(sa.select(StripeEvent).order_by(StripeEvent.received_at)).all()
