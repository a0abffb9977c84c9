"""Billing work that runs in the worker, on the ``high`` queue, and billing's reactions to
account and organization events."""
import functools
import logging

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from saas.billing import gateway
from saas.billing.entitlements import current_subscription
from saas.billing.models import ENDED_STATUSES, Subscription
from saas.billing.service import ensure_customer
from saas.billing.subscriptions import plan_item, store_subscription
from saas.core.database import after_commit, fields_of, one_by_one, transaction
from saas.core.queue import HIGH, enqueue, job_app_context
from saas.extensions import db
from saas.orgs import events as org_events
from saas.orgs.models import Membership, Organization
from saas.orgs.service import lock_org, member_count
from saas.users import events
from saas.users.models import User

log = logging.getLogger(__name__)


def _billing_on():
    return bool(current_app.config["STRIPE_SECRET_KEY"])


@job_app_context
def create_stripe_customer(user_id):
    """Create the Stripe customer of a new user's personal organization. Raises on failure so
    RQ retries it."""
    user = db.session.get(User, user_id)
    if user is None or user.personal_org is None:
        log.info("user %s no longer exists; no Stripe customer created", user_id)
        return None
    return ensure_customer(user.personal_org)


@job_app_context
def sync_customer_email(user_id):
    """Give the user's personal Stripe customer the user's current address. Raises so RQ retries it."""
    user = db.session.get(User, user_id)
    org = user.personal_org if user is not None else None
    if org is not None and org.stripe_customer_id:
        gateway.update_customer_email(org.stripe_customer_id, user.email)


@job_app_context
def sync_seats(org_id):
    """Bring a per-seat subscription's quantity to the organization's member count.

    Counted under the organization's lock, held until Stripe has the new quantity: every change
    of members queues this job after it commits, so the last job to run sees the last count,
    whatever order they ran in. Never takes a number from a client. Raises so RQ retries it.
    """
    with transaction():  # the lock is held until Stripe has the new quantity
        org = lock_org(org_id)
        subscription = current_subscription(org) if org is not None else None
        if subscription is None or subscription.plan not in current_app.config["STRIPE_SEAT_PLANS"]:
            return None
        seats = member_count(org_id)
        current = gateway.retrieve_subscription(subscription.stripe_subscription_id)
        if current is None or current["status"] in ENDED_STATUSES:
            return None
        item = plan_item(current)
        if item.get("quantity") != seats:
            current = gateway.set_item_quantity(current["id"], item["id"], seats)
        store_subscription(org, current)
        return seats


def connect_signals():
    """Every new account gets its Stripe customer in the background, and keeps its address;
    organizations get their seats counted and their subscriptions canceled when deleted."""
    events.user_registered.connect(_queue_customer_for_new_user, weak=False)
    events.email_changed.connect(_queue_customer_email_sync, weak=False)
    org_events.members_changed.connect(_queue_seat_sync, weak=False)
    org_events.org_deleting.connect(_cancel_subscriptions_of_deleted_org, weak=False)
    events.account_deleted.connect(_queue_cancellations_of_deleted_account, weak=False)
    events.account_export.connect(_export_subscriptions, weak=False)


def _queue_customer_for_new_user(user, **_):
    after_commit(functools.partial(_queue_customer, user.id))


def _queue_customer(user_id):
    # Signup must not fail because Redis is down: billing endpoints create a missing customer
    # on demand, and the worker's sweep creates the rest.
    if not _billing_on():
        return
    try:
        enqueue(create_stripe_customer, user_id, queue=HIGH)
    except RedisError:
        log.warning("could not queue Stripe customer creation for user %s; left for the sweeper", user_id)


def _queue_customer_email_sync(user, **_):
    org = user.personal_org
    if not (_billing_on() and org is not None and org.stripe_customer_id):
        return
    after_commit(functools.partial(_queue_or_log, sync_customer_email, user.id,
                                   warning=f"could not queue the Stripe customer's new address for user {user.id}"))


def _queue_seat_sync(org_id, **_):
    if not (_billing_on() and current_app.config["STRIPE_SEAT_PLANS"]):
        return
    after_commit(functools.partial(
        _queue_or_log, sync_seats, org_id,
        warning=f"could not queue the seat count of organization {org_id}; `flask billing sync-seats` repairs it",
    ))


def _queue_or_log(job, key, *, warning):
    try:
        enqueue(job, key, queue=HIGH)
    except RedisError:
        log.warning(warning)


def _cancel_subscriptions_of_deleted_org(org, **_):
    """Cancel in Stripe, at once, every live subscription of an organization being deleted; an
    error (Stripe down) stops the deletion, so nobody is billed for an organization that is gone."""
    _cancel_now(db.session.scalars(
        sa.select(Subscription.stripe_subscription_id)
        .where(Subscription.org_id == org.id, Subscription.status.not_in(ENDED_STATUSES))
    ).all())


def _cancel_now(stripe_subscription_ids):
    """Cancel in Stripe at once, and record it here without waiting for the webhook, in the
    caller's use case. A Stripe error stops before anything is recorded."""
    for stripe_subscription_id in stripe_subscription_ids:
        gateway.cancel_subscription(stripe_subscription_id)
    if stripe_subscription_ids:
        db.session.execute(
            sa.update(Subscription).where(Subscription.stripe_subscription_id.in_(stripe_subscription_ids))
            .values(status="canceled", cancel_at_period_end=False, past_due_since=None)
        )


def sync_all_seats():
    """``sync_seats`` for every organization on a per-seat plan; returns (synced, failures)."""
    plans = current_app.config["STRIPE_SEAT_PLANS"]
    org_ids = db.session.scalars(
        sa.select(Organization.id).where(Organization.plan.in_(plans)).order_by(Organization.id)
    ).all() if plans else []
    return one_by_one(org_ids, sync_seats)


def sync_mismatched_seats(limit):
    """``sync_seats`` for the per-seat subscriptions whose stored quantity is not the member
    count (a seat job lost with Redis, or a subscription that started after the last change);
    for the sweep. Returns (synced, failures)."""
    plans = current_app.config["STRIPE_SEAT_PLANS"]
    if not plans:
        return 0, []
    members = (
        sa.select(Membership.org_id, sa.func.count().label("members")).group_by(Membership.org_id).subquery()
    )
    org_ids = db.session.scalars(
        sa.select(Subscription.org_id).distinct()
        .join(members, members.c.org_id == Subscription.org_id)
        .where(Subscription.plan.in_(plans), Subscription.status.not_in(ENDED_STATUSES),
               Subscription.quantity.is_distinct_from(members.c.members))
        .order_by(Subscription.org_id).limit(limit)
    ).all()
    return one_by_one(org_ids, sync_seats)


def _live_subscriptions_of_deleted_accounts(limit=None, *, user_id=None):
    """Stripe ids of live subscriptions paid by the personal organization of a deleted account
    (of ``user_id``'s only, when given)."""
    query = (
        sa.select(Subscription.stripe_subscription_id)
        .join(Organization, Organization.id == Subscription.org_id)
        .join(User, User.id == Organization.personal_owner_id)
        .where(User.deleted_at.is_not(None), Subscription.status.not_in(ENDED_STATUSES))
        .order_by(Subscription.id)
    )
    if user_id is not None:
        query = query.where(User.id == user_id)
    return db.session.scalars(query.limit(limit) if limit else query).all()


@job_app_context
def cancel_subscription_of_deleted_account(stripe_subscription_id):
    """Cancel at once in Stripe; the webhook that follows records it. Raises so RQ retries."""
    gateway.cancel_subscription(stripe_subscription_id)


def _queue_cancellations_of_deleted_account(user, **_):
    """Sent inside the deletion's use case: the live subscriptions are read there, and their
    cancellations queued once it commits."""
    if not _billing_on():
        return
    for stripe_subscription_id in _live_subscriptions_of_deleted_accounts(user_id=user.id):
        after_commit(functools.partial(
            _queue_or_log, cancel_subscription_of_deleted_account, stripe_subscription_id,
            warning="could not queue the cancellation of a deleted account's subscription; the sweep will",
        ))


def cancel_subscriptions_of_deleted_accounts(limit):
    """For the sweep: cancel what a lost job left live. Returns (canceled, failures)."""
    return one_by_one(_live_subscriptions_of_deleted_accounts(limit), lambda sub_id: _cancel_now([sub_id]))


SUBSCRIPTION_EXPORT = ("stripe_subscription_id", "stripe_customer_id", "status", "price_id", "plan", "quantity",
                       "current_period_end", "cancel_at_period_end", "trial_end", "created_at")


def _export_subscriptions(user, **_):
    """The subscriptions the user's personal organization pays (a team's belong to the team)."""
    org = user.personal_org
    rows = [] if org is None else db.session.scalars(
        sa.select(Subscription).where(Subscription.org_id == org.id).order_by(Subscription.id)
    ).all()
    return {"subscriptions": [fields_of(row, SUBSCRIPTION_EXPORT) for row in rows]}
