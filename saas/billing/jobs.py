"""Billing work that runs in the worker, on the ``high`` queue."""
import logging

from flask import current_app
from redis.exceptions import RedisError

from saas.billing import gateway
from saas.billing.service import ensure_customer
from saas.core.queue import HIGH, enqueue, job_app_context
from saas.extensions import db
from saas.users import events
from saas.users.models import User

log = logging.getLogger(__name__)


@job_app_context
def create_stripe_customer(user_id):
    """Create the Stripe customer of a new user. Raises on failure so RQ retries it."""
    user = db.session.get(User, user_id)
    if user is None:
        log.info("user %s no longer exists; no Stripe customer created", user_id)
        return None
    return ensure_customer(user)


def create_stripe_customer_later(user):
    """Queue the customer creation (inline without Redis); a no-op when billing is off."""
    if not current_app.config["STRIPE_SECRET_KEY"]:
        return None
    return enqueue(create_stripe_customer, user.id, queue=HIGH)


@job_app_context
def sync_customer_email(user_id):
    """Give the user's Stripe customer the user's current address. Raises so RQ retries it."""
    user = db.session.get(User, user_id)
    if user is not None and user.stripe_customer_id:
        gateway.update_customer_email(user.stripe_customer_id, user.email)


def connect_signals():
    """Every new account gets its Stripe customer in the background, and keeps its address."""
    events.user_registered.connect(_queue_customer_for_new_user, weak=False)
    events.email_changed.connect(_queue_customer_email_sync, weak=False)


def _queue_customer_email_sync(user, **_):
    if not (current_app.config["STRIPE_SECRET_KEY"] and user.stripe_customer_id):
        return
    try:
        enqueue(sync_customer_email, user.id, queue=HIGH)
    except RedisError:
        log.warning("could not queue the Stripe customer's new address for user %s", user.id)


def _queue_customer_for_new_user(user, **_):
    # Signup must not fail because Redis is down: billing endpoints create a missing customer
    # on demand, and `flask billing ensure-customers` sweeps the rest.
    try:
        create_stripe_customer_later(user)
    except RedisError:
        log.warning("could not queue Stripe customer creation for user %s; left for the sweeper", user.id)
