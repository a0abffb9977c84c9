"""Billing rules: which customer, which price, which redirect targets are allowed."""
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from saas.billing import gateway
from saas.billing.entitlements import current_subscription, mirror_to_owner
from saas.core.database import atomic, one_by_one, transaction
from saas.core.errors import Conflict, InvalidInput
from saas.extensions import db
from saas.orgs import audit
from saas.orgs.models import OWNER, Membership, Organization
from saas.orgs.service import lock_org, member_count
from saas.users.models import User


class UnknownPlan(InvalidInput):
    message = "Unknown plan."


class UnknownPrice(InvalidInput):
    message = "Unknown price."


class RedirectNotAllowed(InvalidInput):
    message = "Redirect URL not allowed."


class AlreadySubscribed(Conflict):
    message = "You already have a subscription; change plans or payment details in the customer portal."


def billing_owner(org):
    """Whose email the organization's Stripe customer carries: the personal organization's user,
    else its first owner."""
    if org.personal:
        return org.personal_owner
    return db.session.scalar(
        sa.select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org.id, Membership.role == OWNER)
        .order_by(Membership.joined_at, Membership.id).limit(1)
    )


def ensure_customer(org):
    """The organization's Stripe customer id, creating the customer if the signup job has not
    yet. The idempotency key is the signup job's, so a race between the two yields one
    customer; the conditional UPDATE keeps whichever id was stored first.
    """
    if org.stripe_customer_id:
        return org.stripe_customer_id
    customer_id = gateway.create_customer(org, billing_owner(org))
    _store_customer(org, customer_id)
    return org.stripe_customer_id


@atomic
def _store_customer(org, customer_id):
    db.session.execute(
        sa.update(Organization)
        .where(Organization.id == org.id, Organization.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )
    db.session.refresh(org)
    mirror_to_owner(org)


def create_missing_customers(registered_before=None, limit=None):
    """The Stripe customer of every personal organization of an active user that has none
    (their signup job was lost, Redis or Stripe was down); created before ``registered_before``
    when given: a younger one's job may still be queued. Team organizations get theirs at their
    first checkout. Returns (how many were created, [(organization id, error), ...])."""
    query = (
        sa.select(Organization.id)
        .join(User, User.id == Organization.personal_owner_id)
        .where(Organization.stripe_customer_id.is_(None), User.is_active.is_(True))
    )
    if registered_before is not None:
        query = query.where(Organization.created_at < registered_before)
    org_ids = db.session.scalars(query.order_by(Organization.id).limit(limit)).all()
    return one_by_one(org_ids, lambda org_id: ensure_customer(db.session.get(Organization, org_id)))


def configured_plans():
    """``{plan_name: price_id}`` from STRIPE_PLANS."""
    return current_app.config["STRIPE_PLANS"]


def plan_list():
    return [{"plan": plan, "price_id": price_id} for plan, price_id in configured_plans().items()]


def resolve_price(*, price_id=None, plan=None):
    plans = configured_plans()
    if plan is not None:
        if plan not in plans:
            raise UnknownPlan(field="plan", reason=f"Choose one of: {', '.join(plans) or 'none configured'}.")
        resolved = plans[plan]
        if price_id is not None and price_id != resolved:
            raise UnknownPrice("price_id and plan disagree.", field="price_id", reason="Does not match plan.")
        return resolved
    if price_id not in plans.values():
        raise UnknownPrice(field="price_id", reason="Not one of the configured plans' prices.")
    return price_id


def allowed_origins():
    origins = {_origin(url) for url in current_app.config["ALLOWED_ORIGINS"]}
    origins.add(_origin(current_app.config["FRONTEND_URL"]))
    return origins - {None}


def safe_redirect_url(url, *, field, default_path):
    """``url`` if it points at an allowed origin, the FRONTEND_URL default if it is None."""
    if url is None:
        return current_app.config["FRONTEND_URL"].rstrip("/") + default_path
    if _origin(url) not in allowed_origins():
        raise RedirectNotAllowed(
            field=field, reason="Must point at one of the allowed origins (ALLOWED_ORIGINS, FRONTEND_URL)."
        )
    return url


def _origin(url):
    # urlsplit silently drops tabs and newlines and trims spaces; a URL that needs that is refused.
    if any(char.isspace() or ord(char) < 32 for char in url or ""):
        return None
    try:
        parts = urlsplit(url or "")
        port = parts.port  # raises for `https://localhost:3000.evil.com`
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname.lower()}:{port}"


def start_checkout(org, user, *, price_id=None, plan=None, success_url=None, cancel_url=None):
    """A checkout session for ``price``: the organization's open one for the same price and
    redirects if there is one, else a new one, after expiring any other open session, so an
    organization can never pay for two subscriptions. Checkouts of one organization are
    serialised on its row. A per-seat plan (STRIPE_SEAT_PLANS) is bought for every member."""
    price = resolve_price(price_id=price_id, plan=plan)
    existing = current_subscription(org)
    if existing is not None and existing.status in ("active", "trialing", "past_due"):
        raise AlreadySubscribed()
    success = safe_redirect_url(success_url, field="success_url", default_path="/billing/success?session_id={CHECKOUT_SESSION_ID}")
    cancel = safe_redirect_url(cancel_url, field="cancel_url", default_path="/billing/cancel")
    customer_id = ensure_customer(org)  # a use case of its own: stored before the checkout's calls
    return _open_checkout(org, user, customer_id, price, success, cancel)


@atomic
def _open_checkout(org, user, customer_id, price, success, cancel):
    lock_org(org.id)  # held until this commits
    plan_name = next(name for name, plan_price in configured_plans().items() if plan_price == price)
    quantity = member_count(org.id) if plan_name in current_app.config["STRIPE_SEAT_PLANS"] else 1
    for session in gateway.open_checkout_sessions(customer_id):
        same = (session.get("metadata") or {}).get("price_id") == price
        if same and (session.get("success_url"), session.get("cancel_url")) == (success, cancel):
            return {"checkout_url": session["url"], "session_id": session["id"]}
        gateway.expire_checkout_session(session["id"])
    session = gateway.create_checkout_session(
        customer_id=customer_id, price_id=price, success_url=success, cancel_url=cancel, org_id=org.id,
        user_id=user.id, quantity=quantity,
    )
    audit.record(org.id, "billing.checkout_started", target=f"checkout:{session.id}",
                 details={"plan": plan_name, "quantity": quantity})
    return {"checkout_url": session.url, "session_id": session.id}


def open_portal(org, *, return_url=None):
    target = safe_redirect_url(return_url, field="return_url", default_path="/account")
    customer_id = ensure_customer(org)
    with transaction():
        session = gateway.create_portal_session(customer_id=customer_id, return_url=target)
        audit.record(org.id, "billing.portal_opened")
    return {"portal_url": session.url}
