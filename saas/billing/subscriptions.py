"""Our copy of Stripe subscriptions, always written from what Stripe says now.

Webhook events arrive late, twice and out of order, so no event payload is ever trusted for
state: whatever the event, the subscription is fetched again from Stripe and stored as it is at
that moment. Writers first lock the owner's users row, and fetch after taking the lock, so of
two writers the later one always stores the later state, and two events about a brand-new
subscription cannot both insert it.
"""
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import current_app

from saas.billing import gateway
from saas.billing.entitlements import refresh_plan
from saas.billing.models import ENDED_STATUSES, Subscription
from saas.core.time import utcnow
from saas.extensions import db
from saas.users.models import User

log = logging.getLogger(__name__)


def plan_for_price(price_id):
    """The STRIPE_PLANS name of ``price_id``, or None when it is not a configured plan."""
    return next((plan for plan, price in current_app.config["STRIPE_PLANS"].items() if price == price_id), None)


def stripe_id(value):
    """The id of a Stripe reference, whether it came as an id or as an expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def _timestamp(value):
    return datetime.fromtimestamp(value, timezone.utc) if value else None


def _plan_item(stripe_subscription):
    """The item that carries the plan: the first with a configured price, else the first."""
    items = (stripe_subscription.get("items") or {}).get("data") or [{}]
    return next((item for item in items if plan_for_price(stripe_id(item.get("price")))), items[0])


def _fields_from_stripe(stripe_subscription):
    item = _plan_item(stripe_subscription)
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
    }


def lock_user(user_id):
    """The user, row-locked until the transaction ends; None if there is no such user."""
    return db.session.execute(
        sa.select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _local(stripe_subscription_id):
    return db.session.execute(
        sa.select(Subscription)
        .where(Subscription.stripe_subscription_id == stripe_subscription_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def find_owner_id(*, stripe_subscription_id=None, customer_id=None, user_id_hint=None):
    """Whose subscription this is: the stored owner, else the customer's user, else the user
    named by our own metadata (checkout's ``client_reference_id``, ``metadata.user_id``) when that
    user has no other Stripe customer. None when it belongs to no user of ours."""
    if stripe_subscription_id:
        owner = db.session.scalar(
            sa.select(Subscription.user_id).where(Subscription.stripe_subscription_id == stripe_subscription_id)
        )
        if owner is not None:
            return owner
    if customer_id:
        owner = db.session.scalar(sa.select(User.id).where(User.stripe_customer_id == customer_id))
        if owner is not None:
            return owner
    if user_id_hint and str(user_id_hint).isdigit():
        user = db.session.get(User, int(user_id_hint))
        if user is not None and user.stripe_customer_id in (None, customer_id):
            return user.id
    return None


def refresh_subscription(stripe_subscription_id, *, customer_id=None, user_id_hint=None):
    """Fetch the subscription from Stripe and store it for its owner; the caller commits.

    Returns the stored row, or None when the subscription belongs to none of our users.
    """
    owner_id = find_owner_id(
        stripe_subscription_id=stripe_subscription_id, customer_id=customer_id, user_id_hint=user_id_hint
    )
    user = lock_user(owner_id) if owner_id is not None else None
    if user is None:
        log.warning("subscription %s (customer %s) belongs to no user; not stored", stripe_subscription_id, customer_id)
        return None
    current = gateway.retrieve_subscription(stripe_subscription_id)
    if current is None:
        return _mark_gone(stripe_subscription_id)
    return store_subscription(user, current)


def store_subscription(user, stripe_subscription):
    """Insert or update the row of ``stripe_subscription`` (a dict as Stripe returns it).

    The caller holds the lock on ``user`` (see ``lock_user``) and commits.
    """
    fields = _fields_from_stripe(stripe_subscription)
    if fields["price_id"] and fields["plan"] is None:
        log.warning("subscription %s has price %s, which is not in STRIPE_PLANS", stripe_subscription["id"], fields["price_id"])
    # An ended subscription may belong to a customer that was deleted since (its
    # customer.deleted can arrive first): relinking that customer would break billing for good.
    if user.stripe_customer_id is None and fields["status"] not in ENDED_STATUSES:
        user.stripe_customer_id = fields["stripe_customer_id"]
    row = _local(stripe_subscription["id"])
    if row is None:
        row = Subscription(stripe_subscription_id=stripe_subscription["id"], user_id=user.id, status=fields["status"])
        db.session.add(row)
    if fields["status"] != "past_due":
        row.past_due_since = None
    elif row.status != "past_due" or row.past_due_since is None:
        row.past_due_since = utcnow()
    for name, value in fields.items():
        setattr(row, name, value)
    db.session.flush()
    refresh_plan(user)
    return row


def _mark_gone(stripe_subscription_id):
    row = _local(stripe_subscription_id)
    if row is not None:
        log.warning("subscription %s no longer exists in Stripe; marked canceled", stripe_subscription_id)
        row.status = "canceled"
        row.cancel_at_period_end = False
        row.past_due_since = None
        db.session.flush()
        refresh_plan(db.session.get(User, row.user_id))
    return row


def cancel_customer_subscriptions(customer_id):
    """A deleted customer's subscriptions are over; the customer id is freed for a new one."""
    owner_id = find_owner_id(customer_id=customer_id)
    user = lock_user(owner_id) if owner_id is not None else None
    if user is not None and user.stripe_customer_id == customer_id:
        user.stripe_customer_id = None
        user.stripe_customers_deleted += 1
    db.session.execute(
        sa.update(Subscription)
        .where(Subscription.stripe_customer_id == customer_id, Subscription.status.not_in(ENDED_STATUSES))
        .values(status="canceled", cancel_at_period_end=False, past_due_since=None)
        .execution_options(synchronize_session="fetch")
    )
    if user is not None:
        refresh_plan(user)


def sync_customer(user):
    """Make the user's stored subscriptions match Stripe's list; commits. Returns how many."""
    user = lock_user(user.id)
    customer_id = user.stripe_customer_id if user is not None else None
    if customer_id is None:
        db.session.commit()
        return 0
    stripe_subscriptions = gateway.list_subscriptions(customer_id)
    for stripe_subscription in stripe_subscriptions:
        store_subscription(user, stripe_subscription)
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
    db.session.commit()
    return len(stripe_subscriptions)


def sync_all_customers():
    """``sync_customer`` for every user with a Stripe customer; returns (synced, failures)."""
    user_ids = db.session.scalars(
        sa.select(User.id).where(User.stripe_customer_id.is_not(None)).order_by(User.id)
    ).all()
    synced, failures = 0, []
    for user_id in user_ids:
        user = db.session.get(User, user_id)
        try:
            sync_customer(user)
            synced += 1
        except Exception as error:  # one customer's failure must not stop the others
            db.session.rollback()
            failures.append((user_id, error))
    return synced, failures
