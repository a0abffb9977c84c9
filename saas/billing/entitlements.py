"""Who may use what: an organization's current subscription and the plan it grants.

The plan is kept on the organization's row (``plan``, ``plan_past_due_since``) by
``refresh_plan``, called wherever a subscription is written, so reading it
(``Organization.effective_plan``) costs no query.
"""
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from saas.billing.models import ENDED_STATUSES, Subscription
from saas.core.errors import PaymentRequired
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs.models import FREE_PLAN

NO_SUBSCRIPTION = "none"
PAID_STATUSES = ("active", "trialing")


class PlanRequired(PaymentRequired):
    def __init__(self, required, current):
        super().__init__(
            f"This needs the {' or '.join(required)} plan; your plan is {current}.",
            errors={"required_plans": list(required), "current_plan": current},
        )


def grace_period_end(subscription):
    """When a past_due subscription stops giving access (None unless it is past_due)."""
    if subscription.status != "past_due" or subscription.past_due_since is None:
        return None
    return subscription.past_due_since + timedelta(days=current_app.config["BILLING_PAST_DUE_GRACE_DAYS"])


def grants_access(subscription):
    """Active and trialing subscriptions do; a past_due one does until its grace period ends."""
    if subscription.status in PAID_STATUSES:
        return True
    grace_end = grace_period_end(subscription)
    return grace_end is not None and utcnow() < grace_end


def current_subscription(org):
    """The subscription that speaks for the organization: one that grants access if any, the
    newest first; ended (canceled, expired) subscriptions never. None when there is none."""
    subscriptions = db.session.scalars(
        sa.select(Subscription).where(Subscription.org_id == org.id, Subscription.status.not_in(ENDED_STATUSES))
    ).all()
    if not subscriptions:
        return None
    return max(subscriptions, key=lambda subscription: (grants_access(subscription), subscription.created_at))


def refresh_plan(org):
    """Copy the plan of the organization's current subscription onto its row; the caller commits.

    A past_due subscription's plan is copied with the time it went past_due, so the grace
    period is counted when the plan is read.
    """
    subscription = current_subscription(org)
    if subscription is None or subscription.plan is None:
        org.plan, org.plan_past_due_since = FREE_PLAN, None
    elif subscription.status in PAID_STATUSES:
        org.plan, org.plan_past_due_since = subscription.plan, None
    elif subscription.status == "past_due" and subscription.past_due_since is not None:
        org.plan, org.plan_past_due_since = subscription.plan, subscription.past_due_since
    else:
        org.plan, org.plan_past_due_since = FREE_PLAN, None
    mirror_to_owner(org)


def mirror_to_owner(org):
    """Expand/contract: the previous release reads a personal organization's billing columns on
    its owner's users row; they are kept in step until a later release drops them."""
    if org.personal and org.personal_owner is not None:
        owner = org.personal_owner
        owner.stripe_customer_id = org.stripe_customer_id
        owner.stripe_customers_deleted = org.stripe_customers_deleted
        owner.plan, owner.plan_past_due_since = org.plan, org.plan_past_due_since


def require_plan(org, plans):
    """Refuse with 402 unless the organization's plan is one of ``plans`` (any configured plan
    if empty)."""
    required = list(plans or current_app.config["STRIPE_PLANS"])
    plan = org.effective_plan
    if plan not in required:
        raise PlanRequired(required, plan)
    return plan


def seats(subscription):
    """A per-seat subscription's quantity (STRIPE_SEAT_PLANS); None for other plans."""
    if subscription is None or subscription.plan not in current_app.config["STRIPE_SEAT_PLANS"]:
        return None
    return subscription.quantity


def subscription_summary(org):
    subscription = current_subscription(org)
    if subscription is None:
        return {
            "plan": FREE_PLAN,
            "status": NO_SUBSCRIPTION,
            "price_id": None,
            "current_period_end": None,
            "cancel_at_period_end": False,
            "trial_end": None,
            "has_access": False,
            "grace_period_end": None,
            "seats": None,
        }
    return {
        "plan": subscription.plan,
        "status": subscription.status,
        "price_id": subscription.price_id,
        "current_period_end": subscription.current_period_end,
        "cancel_at_period_end": subscription.cancel_at_period_end,
        "trial_end": subscription.trial_end,
        "has_access": grants_access(subscription),
        "grace_period_end": grace_period_end(subscription),
        "seats": seats(subscription),
    }
