"""Our copy of Stripe subscriptions, always written from what Stripe says now.

Webhook events arrive late, twice and out of order, so no event payload is ever trusted for
state: whatever the event, the subscription is fetched again from Stripe and stored as it is at
that moment. Writers first lock the owning organization's row, and fetch after taking the
lock, so of two writers the later one always stores the later state, and two events about a
brand-new subscription cannot both insert it.
"""
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import current_app

from saas.billing import gateway
from saas.billing.entitlements import refresh_plan, seats
from saas.billing.models import ENDED_STATUSES, Subscription
from saas.core.database import atomic, one_by_one
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs import audit
from saas.orgs.models import Organization
from saas.orgs.service import lock_org
from saas.webhooks import events as webhook_events

log = logging.getLogger(__name__)


def plan_for_price(price_id):
    """The STRIPE_PLANS name of ``price_id``, or None when it is not a configured plan."""
    return next((plan for plan, price in current_app.config["STRIPE_PLANS"].items() if price == price_id), None)


def stripe_id(value):
    """The id of a Stripe reference, whether it came as an id or as an expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def _timestamp(value):
    return datetime.fromtimestamp(value, timezone.utc) if value else None


def plan_item(stripe_subscription):
    """The item that carries the plan: the first with a configured price, else the first."""
    items = (stripe_subscription.get("items") or {}).get("data") or [{}]
    return next((item for item in items if plan_for_price(stripe_id(item.get("price")))), items[0])


def _fields_from_stripe(stripe_subscription):
    item = plan_item(stripe_subscription)
    price_id = stripe_id(item.get("price"))
    # Since API version 2025-03-31 the billing period lives on the item, not the subscription.
    period_end = item.get("current_period_end") or stripe_subscription.get("current_period_end")
    return {
        "stripe_customer_id": stripe_id(stripe_subscription["customer"]),
        "status": stripe_subscription["status"],
        "price_id": price_id,
        "plan": plan_for_price(price_id),
        "current_period_end": _timestamp(period_end),
        "cancel_at_period_end": bool(stripe_subscription.get("cancel_at_period_end")),
        "trial_end": _timestamp(stripe_subscription.get("trial_end")),
        "quantity": item.get("quantity"),
    }


def _local(stripe_subscription_id):
    return db.session.execute(
        sa.select(Subscription)
        .where(Subscription.stripe_subscription_id == stripe_subscription_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def find_owner_id(*, stripe_subscription_id=None, customer_id=None, org_id_hint=None, user_id_hint=None):
    """Whose subscription this is: the stored organization, else the customer's, else the one
    our own metadata names (``metadata.org_id``, or from before organizations ``user_id``: that
    user's personal organization) when it has no other Stripe customer. None when it belongs to
    no organization of ours."""
    if stripe_subscription_id:
        owner = db.session.scalar(
            sa.select(Subscription.org_id).where(Subscription.stripe_subscription_id == stripe_subscription_id)
        )
        if owner is not None:
            return owner
    if customer_id:
        owner = db.session.scalar(sa.select(Organization.id).where(Organization.stripe_customer_id == customer_id))
        if owner is not None:
            return owner
    org = None
    if org_id_hint and str(org_id_hint).isdigit() and len(str(org_id_hint)) < 19:
        org = db.session.get(Organization, int(org_id_hint))
    elif user_id_hint and str(user_id_hint).isdigit() and len(str(user_id_hint)) < 19:
        org = db.session.scalar(sa.select(Organization).where(Organization.personal_owner_id == int(user_id_hint)))
    if org is not None and org.stripe_customer_id in (None, customer_id):
        return org.id
    return None


def refresh_subscription(stripe_subscription_id, *, customer_id=None, org_id_hint=None, user_id_hint=None):
    """Fetch the subscription from Stripe and store it for its organization, in the caller's use case.

    Returns the stored row, or None when the subscription belongs to no organization of ours.
    """
    owner_id = find_owner_id(
        stripe_subscription_id=stripe_subscription_id, customer_id=customer_id, org_id_hint=org_id_hint,
        user_id_hint=user_id_hint,
    )
    org = lock_org(owner_id) if owner_id is not None else None
    if org is None:
        log.warning("subscription %s (customer %s) belongs to no organization; not stored", stripe_subscription_id, customer_id)
        return None
    current = gateway.retrieve_subscription(stripe_subscription_id)
    if current is None:
        return _mark_gone(stripe_subscription_id)
    return store_subscription(org, current)


def store_subscription(org, stripe_subscription):
    """Insert or update the row of ``stripe_subscription`` (a dict as Stripe returns it).

    The caller's use case holds the lock on ``org`` (see ``lock_org``). A change of plan or
    status goes to the organization's audit log.
    """
    fields = _fields_from_stripe(stripe_subscription)
    if fields["price_id"] and fields["plan"] is None:
        log.warning("subscription %s has price %s, which is not in STRIPE_PLANS", stripe_subscription["id"], fields["price_id"])
    # An ended subscription may belong to a customer that was deleted since (its
    # customer.deleted can arrive first): relinking that customer would break billing for good.
    if org.stripe_customer_id is None and fields["status"] not in ENDED_STATUSES:
        org.stripe_customer_id = fields["stripe_customer_id"]
    row = _local(stripe_subscription["id"])
    before = None if row is None else (row.status, row.plan, row.quantity)
    if row is None:
        row = Subscription(stripe_subscription_id=stripe_subscription["id"], org_id=org.id, status=fields["status"])
        db.session.add(row)
    row.org_id = org.id
    row.user_id = org.personal_owner_id
    if fields["status"] != "past_due":
        row.past_due_since = None
    elif row.status != "past_due" or row.past_due_since is None:
        row.past_due_since = utcnow()
    for name, value in fields.items():
        setattr(row, name, value)
    if before != (row.status, row.plan, row.quantity):
        audit.record(org.id, "billing.subscription_changed", target=f"subscription:{row.stripe_subscription_id}",
                     details={"status": row.status, "plan": row.plan, "quantity": row.quantity})
        webhook_events.subscription_updated(org.id, row, seats=seats(row))
    db.session.flush()
    refresh_plan(org)
    return row


def _mark_gone(stripe_subscription_id):
    row = _local(stripe_subscription_id)
    if row is not None:
        log.warning("subscription %s no longer exists in Stripe; marked canceled", stripe_subscription_id)
        row.status = "canceled"
        row.cancel_at_period_end = False
        row.past_due_since = None
        db.session.flush()
        webhook_events.subscription_updated(row.org_id, row, seats=seats(row))
        if row.org_id is not None:
            refresh_plan(db.session.get(Organization, row.org_id))
    return row


def cancel_customer_subscriptions(customer_id):
    """A deleted customer's subscriptions are over; the customer id is freed for a new one."""
    owner_id = find_owner_id(customer_id=customer_id)
    org = lock_org(owner_id) if owner_id is not None else None
    if org is not None and org.stripe_customer_id == customer_id:
        org.stripe_customer_id = None
        org.stripe_customers_deleted += 1
    db.session.execute(
        sa.update(Subscription)
        .where(Subscription.stripe_customer_id == customer_id, Subscription.status.not_in(ENDED_STATUSES))
        .values(status="canceled", cancel_at_period_end=False, past_due_since=None)
        .execution_options(synchronize_session="fetch")
    )
    if org is not None:
        refresh_plan(org)


@atomic
def sync_customer(org):
    """Make the organization's stored subscriptions match Stripe's list. Returns how many."""
    org = lock_org(org.id)
    customer_id = org.stripe_customer_id if org is not None else None
    if customer_id is None:
        return 0
    stripe_subscriptions = gateway.list_subscriptions(customer_id)
    for stripe_subscription in stripe_subscriptions:
        store_subscription(org, stripe_subscription)
    listed = {stripe_subscription["id"] for stripe_subscription in stripe_subscriptions}
    stale = db.session.scalars(
        sa.select(Subscription.stripe_subscription_id).where(
            Subscription.stripe_customer_id == customer_id,
            Subscription.status.not_in(ENDED_STATUSES),
            Subscription.stripe_subscription_id.not_in(listed),
        )
    ).all()
    for stripe_subscription_id in stale:
        _mark_gone(stripe_subscription_id)
    return len(stripe_subscriptions)


def sync_all_customers():
    """``sync_customer`` for every organization with a Stripe customer; returns (synced, failures)."""
    org_ids = db.session.scalars(
        sa.select(Organization.id).where(Organization.stripe_customer_id.is_not(None)).order_by(Organization.id)
    ).all()
    return one_by_one(org_ids, lambda org_id: sync_customer(db.session.get(Organization, org_id)))
