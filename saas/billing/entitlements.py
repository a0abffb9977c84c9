"""Who may use what: the user's current subscription, their plan, and ``@plan_required``."""
import functools
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from flask_jwt_extended import current_user, verify_jwt_in_request
from flask_smorest import abort

from saas.billing.models import Subscription
from saas.billing.subscriptions import ENDED_STATUSES
from saas.extensions import db
from saas.users.models import utcnow

FREE_PLAN = "free"
NO_SUBSCRIPTION = "none"
PAID_STATUSES = ("active", "trialing")


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


def current_subscription(user):
    """The subscription that speaks for the user: one that grants access if any, the newest
    first; ended (canceled, expired) subscriptions never. None when there is none."""
    subscriptions = db.session.scalars(
        sa.select(Subscription).where(Subscription.user_id == user.id, Subscription.status.not_in(ENDED_STATUSES))
    ).all()
    if not subscriptions:
        return None
    return max(subscriptions, key=lambda subscription: (grants_access(subscription), subscription.created_at))


def effective_plan(user):
    """The plan whose features the user has now: "free" unless a subscription grants one."""
    subscription = current_subscription(user)
    if subscription is None or not grants_access(subscription) or subscription.plan is None:
        return FREE_PLAN
    return subscription.plan


def subscription_summary(user):
    subscription = current_subscription(user)
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
    }


def plan_required(*plans):
    """Let a view run only for users whose effective plan is one of ``plans`` (any configured
    plan when none is named); others get a 402 naming the plans needed. Implies
    ``@jwt_required()``. A past_due subscription keeps its plan for BILLING_PAST_DUE_GRACE_DAYS.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request()
            required = list(plans or current_app.config["STRIPE_PLANS"])
            plan = effective_plan(current_user)
            if plan not in required:
                abort(
                    402,
                    message=f"This needs the {' or '.join(required)} plan; your plan is {plan}.",
                    errors={"required_plans": required, "current_plan": plan},
                )
            return view(*args, **kwargs)

        return wrapper

    return decorator
