"""Receiving Stripe webhook events: verify, store once, apply once.

The row insert on the event's primary key is the exactly-once gate: of several deliveries of
the same event, even simultaneous ones, one inserts and the others see a duplicate. Applying
runs in a job (inline without Redis) that locks the event row, so it happens once however many
jobs ask for it; a failure is recorded on the row and retried by RQ, then by
``flask billing replay-events``.
"""
import logging

import sqlalchemy as sa
import stripe
from sqlalchemy.exc import IntegrityError

from saas.billing import gateway
from saas.billing.handlers import EVENT_HANDLERS
from saas.billing.models import StripeEvent
from saas.core.database import atomic
from saas.core.errors import DomainError
from saas.core.queue import HIGH, enqueue, job_app_context
from saas.core.time import utcnow
from saas.extensions import db

log = logging.getLogger(__name__)


class InvalidWebhook(DomainError):
    status = 400
    message = "The webhook body is not a Stripe event."


def receive_event(payload, signature_header):
    """Verify and store a delivery and have it applied; returns (event id, whether a duplicate).

    If queueing fails (Redis down) the request fails too, so Stripe delivers the event again;
    a duplicate of an event that is stored but not yet applied is queued again for that reason.
    """
    event = _verified_event(payload, signature_header)
    handled = event["type"] in EVENT_HANDLERS
    try:
        _store_event(event, handled)
    except IntegrityError:
        stored = db.session.get(StripeEvent, event["id"])
        if stored is not None and stored.processed_at is None:
            enqueue(apply_stripe_event, event["id"], queue=HIGH)
        log.info("stripe event %s delivered again", event["id"])
        return event["id"], True
    if handled:
        enqueue(apply_stripe_event, event["id"], queue=HIGH)
    return event["id"], False


@atomic
def _store_event(event, handled):
    db.session.add(
        StripeEvent(
            id=event["id"],
            type=event["type"],
            payload=event,
            stripe_created=_timestamp_or_none(event.get("created")),
            # Nothing to apply for a type we do not handle: it is kept only as a record.
            processed_at=None if handled else utcnow(),
        )
    )


def _timestamp_or_none(value):
    """Stripe's ``created`` when it is a plausible Unix time (a BIGINT holds it), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63 else None


def _verified_event(payload, signature_header):
    if not signature_header:
        raise InvalidWebhook("Missing Stripe-Signature header.")
    try:
        event = gateway.verify_webhook(payload, signature_header)
    except stripe.SignatureVerificationError:
        raise InvalidWebhook("Invalid or stale Stripe signature.") from None
    except ValueError:  # also UnicodeDecodeError
        raise InvalidWebhook("The webhook body is not valid JSON.") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not 0 < len(event["id"]) <= 255
        or not isinstance(event.get("type"), str)
        or not 0 < len(event["type"]) <= 255
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise InvalidWebhook()
    return event


@job_app_context
def apply_stripe_event(event_id):
    """Apply a stored event once. Raises after recording the error, so RQ retries."""
    try:
        return _apply(event_id)
    except Exception as error:
        _record_failure(event_id, error)
        raise


@atomic
def _apply(event_id):
    # populate_existing: a copy of the row already in the session must not hide another
    # delivery's processed_at, which is only visible once this lock is granted.
    event_row = db.session.execute(
        sa.select(StripeEvent)
        .where(StripeEvent.id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if event_row is None or event_row.processed_at is not None:
        return False
    handler = EVENT_HANDLERS.get(event_row.type)
    event_row.attempts += 1
    if handler is not None:
        handler(event_row.payload["data"]["object"], event_row.payload)
    event_row.processed_at = utcnow()
    event_row.processing_error = None
    return True


@atomic
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


def replay_failed_events(received_before=None, limit=None):
    """Apply again, oldest first, every stored event not applied yet (received before
    ``received_before`` when given: a younger one may still be on its way through the queue).

    Returns (how many were applied, [(event id, error), ...] for those that failed again).
    """
    query = sa.select(StripeEvent.id).where(StripeEvent.processed_at.is_(None))
    if received_before is not None:
        query = query.where(StripeEvent.received_at < received_before)
    pending = db.session.scalars(query.order_by(StripeEvent.received_at).limit(limit)).all()
    applied, failures = 0, []
    for event_id in pending:
        try:
            applied += bool(apply_stripe_event(event_id))
        except Exception as error:  # recorded on the row by apply_stripe_event; keep going
            failures.append((event_id, error))
    return applied, failures
