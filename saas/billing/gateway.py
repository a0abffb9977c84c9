"""Every Stripe call the app makes, through one ``stripe.StripeClient`` built from config.

Stripe failures leave this module as domain errors: 503 when Stripe cannot be reached or is
throttling us (worth retrying), 502 when it answered with an error we cannot fix here.

Every call goes through ``stripe_call()``: at most STRIPE_MAX_CONCURRENT at once per process (a
bulkhead: a hung Stripe cannot take every request thread), and the whole call, retries
included, within STRIPE_TIMEOUT.
"""
import contextlib
import logging

import stripe
from flask import current_app

from saas.core.bulkhead import bulkhead
from saas.core.errors import BadGateway, ServiceUnavailable
from saas.web.json import loads

log = logging.getLogger(__name__)


class BillingNotConfigured(ServiceUnavailable):
    message = "Billing is not configured on this server (STRIPE_SECRET_KEY is not set)."


class StripeUnavailable(ServiceUnavailable):
    message = "Stripe could not be reached; try again shortly."


class StripeTimeout(ServiceUnavailable):
    # 503 like any Stripe outage (the contract maps Stripe failures to 502/503), worth retrying.
    message = "Stripe did not answer in time; try again shortly."


class StripeRejected(BadGateway):
    message = "Stripe rejected the request."


def stripe_client():
    """The app's StripeClient, built on first use from STRIPE_* settings."""
    client = current_app.extensions.get("stripe_client")
    if client is None:
        config = current_app.config
        if not config["STRIPE_SECRET_KEY"]:
            raise BillingNotConfigured()
        retries = config["STRIPE_MAX_NETWORK_RETRIES"]
        client = stripe.StripeClient(
            config["STRIPE_SECRET_KEY"],
            base_addresses={"api": config["STRIPE_API_BASE"]},
            max_network_retries=retries,
            http_client=stripe.RequestsClient(timeout=attempt_timeout(config["STRIPE_TIMEOUT"], retries)),
        )
        current_app.extensions["stripe_client"] = client
    return client


def attempt_timeout(total, retries):
    """Each attempt's timeout, so that every attempt plus the SDK's waits between them (0.5 s,
    1 s, 2 s... at most 5 s) fit in ``total`` seconds."""
    waits = sum(min(0.5 * 2**attempt, 5) for attempt in range(retries))
    return max(0.5, (total - waits) / (retries + 1))


@contextlib.contextmanager
def stripe_call():
    """One call to Stripe: a slot of the Stripe bulkhead, and Stripe's errors as domain errors."""
    with bulkhead("stripe").slot(), _translated_stripe_errors():
        yield


@contextlib.contextmanager
def _translated_stripe_errors():
    try:
        yield
    except stripe.APIConnectionError as error:
        log.warning("stripe unreachable: %s", error.user_message or error.__class__.__name__)
        if "timed out" in str(error).lower() or "timeout" in str(error).lower():
            raise StripeTimeout() from error
        raise StripeUnavailable() from error
    except stripe.RateLimitError as error:
        log.warning("stripe rate limited us")
        raise StripeUnavailable() from error
    except stripe.StripeError as error:
        log.error("stripe error %s: %s", error.__class__.__name__, error.user_message)
        raise StripeRejected() from error


def customer_idempotency_key(org, owner):
    """Derived from the organization, so the signup job and an on-demand call create one
    customer; a new one after each deleted customer, or Stripe would answer with the deleted one
    for 24 hours. A personal organization keeps the key its user had before organizations."""
    replaced = f"-{org.stripe_customers_deleted}" if org.stripe_customers_deleted else ""
    if org.personal:
        return f"saas-customer-create-user-{owner.id}-{int(owner.created_at.timestamp())}{replaced}"
    return f"saas-customer-create-org-{org.id}-{int(org.created_at.timestamp())}{replaced}"


def create_customer(org, owner):
    """The organization's Stripe customer; ``owner`` gives it its email (receipts go there)."""
    metadata = {"org_id": str(org.id)}
    if org.personal:
        metadata["user_id"] = str(owner.id)
    with stripe_call():
        customer = stripe_client().v1.customers.create(
            params={"email": owner.email, "name": (owner.full_name if org.personal else org.name) or "",
                    "metadata": metadata},
            options={"idempotency_key": customer_idempotency_key(org, owner)},
        )
    return customer.id


def update_customer_email(customer_id, email):
    """Stripe mails receipts and invoices to the customer's email: keep it the user's."""
    with stripe_call():
        stripe_client().v1.customers.update(customer_id, params={"email": email})


def create_checkout_session(*, customer_id, price_id, success_url, cancel_url, org_id, user_id, quantity=1):
    """A subscription checkout for the organization; ``user_id`` is who started it."""
    metadata = {"org_id": str(org_id), "user_id": str(user_id)}
    with stripe_call():
        return stripe_client().v1.checkout.sessions.create(
            params={
                "customer": customer_id,
                "mode": "subscription",
                "line_items": [{"price": price_id, "quantity": quantity}],
                "success_url": success_url,
                "cancel_url": cancel_url,
                "client_reference_id": f"org-{org_id}",
                # The price is kept in the metadata so an open session can be matched later.
                "metadata": {**metadata, "price_id": price_id},
                "subscription_data": {"metadata": metadata},
            }
        )


def set_item_quantity(subscription_id, item_id, quantity):
    """Per-seat billing: the subscription item's quantity; returns the subscription as a dict."""
    with stripe_call():
        return stripe_client().v1.subscriptions.update(
            subscription_id, params={"items": [{"id": item_id, "quantity": quantity}]}
        ).to_dict()


def cancel_subscription(subscription_id):
    """Cancel at once (an organization is being deleted); False if it was over already."""
    try:
        with stripe_call():
            stripe_client().v1.subscriptions.cancel(subscription_id)
    except StripeRejected as error:
        if getattr(error.__cause__, "code", None) == "resource_missing":
            return False
        raise
    return True


def open_checkout_sessions(customer_id):
    """The customer's checkout sessions that can still be paid, newest first, as plain dicts."""
    with stripe_call():
        listed = stripe_client().v1.checkout.sessions.list(
            params={"customer": customer_id, "status": "open", "limit": 100}
        )
        return [session.to_dict() for session in listed.auto_paging_iter()]


def expire_checkout_session(session_id):
    """Close an open checkout session, so it can no longer be paid; False if it was not open."""
    try:
        with stripe_call():
            stripe_client().v1.checkout.sessions.expire(session_id)
    except StripeRejected:
        return False  # completed or expired meanwhile
    return True


def create_portal_session(*, customer_id, return_url):
    with stripe_call():
        return stripe_client().v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": return_url}
        )


def create_meter_event(*, event_name, customer_id, value, identifier, timestamp):
    """Report ``value`` units of usage to a Stripe Billing meter, once per ``identifier``.

    Returns False when Stripe already has an event with this identifier (a retry after an
    answer that was lost): that usage is counted already.
    """
    try:
        with stripe_call():
            stripe_client().v1.billing.meter_events.create(
                params={
                    "event_name": event_name,
                    "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                    "identifier": identifier,
                    "timestamp": int(timestamp),
                },
                options={"idempotency_key": identifier},
            )
    except StripeRejected as error:
        if getattr(error.__cause__, "param", None) == "identifier":
            return False
        raise
    return True


def list_subscriptions(customer_id):
    """Every subscription of the customer, ended ones included, as plain dicts."""
    with stripe_call():
        listed = stripe_client().v1.subscriptions.list(
            params={"customer": customer_id, "status": "all", "limit": 100}
        )
        return [subscription.to_dict() for subscription in listed.auto_paging_iter()]


def retrieve_subscription(subscription_id):
    """The subscription as Stripe has it now, as a plain dict; None if Stripe has no such one."""
    try:
        with stripe_call():
            return stripe_client().v1.subscriptions.retrieve(subscription_id).to_dict()
    except StripeRejected as error:
        if getattr(error.__cause__, "code", None) == "resource_missing":
            return None
        raise


def webhook_secrets():
    """STRIPE_WEBHOOK_SECRET, which may list several secrets (comma-separated) while rotating."""
    raw = current_app.config["STRIPE_WEBHOOK_SECRET"] or ""
    return [secret.strip() for secret in raw.split(",") if secret.strip()]


def verify_webhook(payload, signature_header):
    """The verified event as a dict; raises ``stripe.SignatureVerificationError`` or ValueError.

    The header may carry several ``v1=`` signatures (Stripe signs with the old and the new secret
    while an endpoint secret is being rolled); one matching any of our secrets is enough.
    """
    secrets = webhook_secrets()
    if not secrets:
        raise BillingNotConfigured("Webhooks are not configured (STRIPE_WEBHOOK_SECRET is not set).")
    body = payload.decode("utf-8")
    tolerance = current_app.config["STRIPE_WEBHOOK_TOLERANCE"]
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, signature_header, secret, tolerance=tolerance)
        except stripe.SignatureVerificationError as error:
            failure = error
            continue
        return loads(body)
    raise failure
