"""What each Stripe event type does to our state; types not registered here are ignored.

A handler gets the event's ``data.object`` and the whole event, runs inside the transaction
that marks the event applied, and raises to have the event recorded as failed and retried.
Event payloads are snapshots that may be stale by the time they are applied, so handlers only
take ids from them and ask Stripe for the current state (see ``saas.billing.subscriptions``).
"""
import logging

from saas.billing.subscriptions import cancel_customer_subscriptions, refresh_subscription, stripe_id

log = logging.getLogger(__name__)

# event type -> handler(event_object, event)
EVENT_HANDLERS = {}


def handles(*event_types):
    def register(func):
        for event_type in event_types:
            EVENT_HANDLERS[event_type] = func
        return func

    return register


def _hints(metadata):
    """Our own metadata on a Stripe object: which organization (or, before organizations, which
    user) it was made for."""
    metadata = metadata if isinstance(metadata, dict) else {}
    return {"org_id_hint": metadata.get("org_id"), "user_id_hint": metadata.get("user_id")}


@handles("checkout.session.completed")
def checkout_completed(session, event):
    """Store the new subscription at once, without waiting for its own created event."""
    if session.get("mode") != "subscription" or not session.get("subscription"):
        return None
    hints = _hints(session.get("metadata"))
    reference = str(session.get("client_reference_id") or "")
    if hints["org_id_hint"] is None and reference.startswith("org-"):
        hints["org_id_hint"] = reference[len("org-"):]
    elif hints["user_id_hint"] is None and reference.isdigit():
        hints["user_id_hint"] = reference  # a checkout opened before organizations
    return refresh_subscription(
        stripe_id(session["subscription"]), customer_id=stripe_id(session.get("customer")), **hints
    )


@handles(
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
)
def subscription_changed(subscription, event):
    return refresh_subscription(
        subscription["id"], customer_id=stripe_id(subscription.get("customer")), **_hints(subscription.get("metadata"))
    )


@handles("customer.subscription.trial_will_end")
def trial_will_end(subscription, event):
    """Three days before a trial ends: the place to send the user a reminder."""
    row = subscription_changed(subscription, event)
    if row is not None:
        log.info("trial of subscription %s (organization %s) ends at %s", row.stripe_subscription_id, row.org_id, row.trial_end)
    return row


@handles("invoice.paid", "invoice.payment_failed")
def invoice_settled(invoice, event):
    """A paid or failed renewal moves the subscription to active or past_due."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    # `invoice.subscription` moved to `parent.subscription_details` in API version 2025-03-31.
    subscription_id = stripe_id(details.get("subscription") or invoice.get("subscription"))
    if not subscription_id:
        return None  # a one-off invoice: no subscription state to change
    return refresh_subscription(
        subscription_id, customer_id=stripe_id(invoice.get("customer")), **_hints(details.get("metadata"))
    )


@handles("customer.deleted")
def customer_deleted(customer, event):
    cancel_customer_subscriptions(customer["id"])
