"""Recording events: ``record`` adds the event and one delivery per subscribed endpoint to the
transaction of the change the event reports, and the deliveries are queued once it commits.

So a change that rolls back sends nothing, and one that commits is never lost: if Redis is down
when it commits, the deliveries wait in the database until the worker's sweep queues them
(``jobs.queue_lost_deliveries``). Inside a use case (``@atomic``) the queueing is the use case's
``after_commit``; a module that still commits by hand gets it from its own commit (a session
event), never before it, so no job can look for rows not yet committed.
"""
import json
import secrets

import sqlalchemy as sa
from flask import current_app

from saas.core.database import after_commit, atomic, in_transaction, savepoint
from saas.core.time import utcnow
from saas.extensions import db
from saas.webhooks.catalog import EVENT_TYPES
from saas.webhooks.jobs import queue_deliveries
from saas.webhooks.models import PENDING, WebhookDelivery, WebhookEndpoint, WebhookEvent

_QUEUE_ON_COMMIT = "saas.webhooks.queue_on_commit"


def new_event_id():
    """``msg_<26 random url-safe characters>``: the event's ``webhook-id``."""
    return "msg_" + secrets.token_urlsafe(20)[:26]


def body_of(event_type, data, moment):
    """The payload's exact text: ``{"type", "timestamp", "data"}``, compact, keys sorted."""
    payload = {"type": event_type, "timestamp": moment.isoformat().replace("+00:00", "Z"), "data": data}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def subscribed_endpoints(org_id, event_type):
    endpoints = db.session.scalars(
        sa.select(WebhookEndpoint)
        .where(WebhookEndpoint.org_id == org_id, WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
    ).all()
    return [endpoint for endpoint in endpoints if event_type in endpoint.events]


def record(org_id, event_type, data, *, endpoints=None, once_key=None):
    """Add the event for the organization's endpoints subscribed to ``event_type`` (or for
    ``endpoints``) to the open transaction; nothing when none is. Returns the deliveries."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if org_id is None:
        return []
    endpoints = subscribed_endpoints(org_id, event_type) if endpoints is None else endpoints
    if not endpoints:
        return []
    now = utcnow()
    event = WebhookEvent(
        id=new_event_id(), org_id=org_id, type=event_type, once_key=once_key,
        body=body_of(event_type, {"org_id": org_id, **data}, now), created_at=now,
    )
    db.session.add(event)
    deliveries = [
        WebhookDelivery(endpoint_id=endpoint.id, event_id=event.id, status=PENDING, next_attempt_at=now, created_at=now)
        for endpoint in endpoints
    ]
    db.session.add_all(deliveries)
    db.session.flush()
    _queue_after_commit([delivery.id for delivery in deliveries])
    return deliveries


@atomic
def record_once(org_id, event_type, data, *, once_key):
    """``record``, in a use case of its own, unless an event with ``once_key`` exists already
    (two at the same moment: one wins)."""
    taken = db.session.scalar(sa.select(WebhookEvent.id).where(WebhookEvent.once_key == once_key))
    if taken is not None:
        return []
    try:
        with savepoint():
            return record(org_id, event_type, data, once_key=once_key)
    except sa.exc.IntegrityError:
        return []


def _queue_after_commit(delivery_ids):
    if in_transaction():
        after_commit(lambda: queue_deliveries(delivery_ids))
    else:
        db.session.info.setdefault(_QUEUE_ON_COMMIT, []).extend(delivery_ids)


def _queue_committed(session):
    delivery_ids = session.info.pop(_QUEUE_ON_COMMIT, None)
    if delivery_ids:
        # No SQL can run inside a commit, and a delivery run inline (no Redis, no request) would:
        # an app context of its own gives it a session of its own.
        with current_app.app_context():
            queue_deliveries(delivery_ids)


def _forget_rolled_back(session, previous_transaction):
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint
        session.info.pop(_QUEUE_ON_COMMIT, None)


def connect_session_events():
    """Queue what a hand-committed transaction recorded when it commits; forget it if it rolls back."""
    for name, listener in (("after_commit", _queue_committed), ("after_soft_rollback", _forget_rolled_back)):
        if not sa.event.contains(db.session, name, listener):
            sa.event.listen(db.session, name, listener)
