"""Receiving Stripe webhook events: verify, store once, apply once.

The row insert on the event's primary key is the exactly-once gate: of several deliveries of
the same event, even simultaneous ones, one inserts and the others see a duplicate. Applying
runs in a job (inline without Redis); a failure is recorded on the row and retried.
"""
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
import stripe
from flask_smorest import abort
from sqlalchemy.exc import IntegrityError

from saas.billing import gateway
from saas.billing.models import StripeEvent
from saas.extensions import db
from saas.jobs import enqueue, job_app_context

log = logging.getLogger(__name__)

# event type -> function(event_object, event) ; filled by saas.billing.handlers
EVENT_HANDLERS = {}


def handles(*event_types):
    def register(func):
        for event_type in event_types:
            EVENT_HANDLERS[event_type] = func
        return func

    return register


def receive_event(payload, signature_header):
    """Verify and store a delivery; returns (event id, whether it was a duplicate)."""
    if not signature_header:
        abort(400, message="Missing Stripe-Signature header.")
    try:
        event = gateway.verify_webhook(payload, signature_header)
    except stripe.SignatureVerificationError:
        abort(400, message="Invalid or stale Stripe signature.")
    except (ValueError, UnicodeDecodeError):
        abort(400, message="The webhook body is not valid JSON.")
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        abort(400, message="The webhook body is not a Stripe event.")

    db.session.add(
        StripeEvent(id=event["id"], type=event["type"], payload=event, stripe_created=event.get("created"))
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("stripe event %s delivered again; ignored", event["id"])
        return event["id"], True
    enqueue(apply_stripe_event, event["id"])
    return event["id"], False


@job_app_context
def apply_stripe_event(event_id):
    """Apply a stored event once. Raises after recording the error, so RQ retries."""
    event_row = db.session.execute(
        sa.select(StripeEvent).where(StripeEvent.id == event_id).with_for_update()
    ).scalar_one_or_none()
    if event_row is None or event_row.processed_at is not None:
        db.session.rollback()
        return False
    handler = EVENT_HANDLERS.get(event_row.type)
    event_row.attempts += 1
    try:
        if handler is not None:
            handler(event_row.payload["data"]["object"], event_row.payload)
    except Exception as error:
        db.session.rollback()
        _record_failure(event_id, error)
        raise
    event_row.processed_at = datetime.now(timezone.utc)
    event_row.processing_error = None
    db.session.commit()
    return True


def _record_failure(event_id, error):
    log.exception("stripe event %s failed to apply", event_id)
    db.session.execute(
        sa.update(StripeEvent)
        .where(StripeEvent.id == event_id)
        .values(
            attempts=StripeEvent.attempts + 1,
            processing_error=f"{error.__class__.__name__}: {error}"[:2000],
        )
    )
    db.session.commit()


def replay_failed_events():
    """Apply again every stored event that has not been applied; returns how many succeeded."""
    pending = db.session.scalars(
        sa.select(StripeEvent.id).where(StripeEvent.processed_at.is_(None)).order_by(StripeEvent.received_at)
    ).all()
    applied = 0
    for event_id in pending:
        try:
            applied += bool(apply_stripe_event(event_id))
        except Exception:
            continue
    return applied
