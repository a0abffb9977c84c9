"""Billing work that runs in ``rq worker``."""
import logging

from flask import current_app

from saas.extensions import db
from saas.jobs import enqueue, job_app_context
from saas.users.models import User

log = logging.getLogger(__name__)


@job_app_context
def create_stripe_customer(user_id):
    """Create the Stripe customer of a new user. Raises on failure so RQ retries it."""
    from saas.billing.service import ensure_customer

    user = db.session.get(User, user_id)
    if user is None:
        log.info("user %s no longer exists; no Stripe customer created", user_id)
        return None
    return ensure_customer(user)


def create_stripe_customer_later(user):
    """Queue the customer creation (inline without Redis); a no-op when billing is off."""
    if not current_app.config["STRIPE_SECRET_KEY"]:
        return None
    return enqueue(create_stripe_customer, user.id)
