"""Managing an organization's webhook endpoints: create, change, delete, rotate the secret, send
a test event, list the deliveries and retry one. Each change is a use case, audited.

A secret is shown twice only: when the endpoint is created and when it is rotated. It is stored
encrypted (``saas.core.secrets``), since signing needs it back.
"""
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from saas.core.database import after_commit, atomic, page_of
from saas.core.errors import Conflict, InvalidInput, NotFound
from saas.core.secrets import encrypt, reencrypt, reencrypting
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs import audit
from saas.webhooks.addresses import RefusedUrl, check_url
from saas.webhooks.jobs import queue_attempt
from saas.webhooks.models import (
    DISABLED_BY_ADMIN,
    OPEN_STATUSES,
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
)
from saas.webhooks.outbox import record
from saas.webhooks.signing import new_secret

# Endpoints per organization: enough for every system a customer runs, few enough that one
# event cannot fan out into a flood.
MAX_ENDPOINTS = 20


class NoSuchWebhook(NotFound):
    message = "No such webhook endpoint."


class NoSuchDelivery(NotFound):
    message = "No such delivery."


class TooManyWebhooks(Conflict):
    message = f"An organization has at most {MAX_ENDPOINTS} webhook endpoints: delete one first."


class WebhookDisabled(Conflict):
    message = "The endpoint is disabled: enable it first (PATCH with `enabled: true`)."


class AttemptInFlight(Conflict):
    message = "An attempt of this delivery is in progress; its outcome will be in the delivery list."


def _checked_url(url):
    try:
        return check_url(url, allow_loopback=current_app.config["WEBHOOKS_ALLOW_LOOPBACK"])
    except RefusedUrl as error:
        raise InvalidInput(str(error), field="url") from None


def reencrypt_secrets(_sender=None):
    """Every endpoint's secrets encrypted again under the first key (key rotation); how many."""
    endpoints = db.session.scalars(sa.select(WebhookEndpoint)).all()
    for endpoint in endpoints:
        endpoint.secret_encrypted = reencrypt(endpoint.secret_encrypted)
        if endpoint.previous_secret_encrypted:
            endpoint.previous_secret_encrypted = reencrypt(endpoint.previous_secret_encrypted)
    return len(endpoints)


def connect_signals():
    reencrypting.connect(reencrypt_secrets, weak=False)


def endpoints_of(org):
    return db.session.scalars(
        sa.select(WebhookEndpoint).where(WebhookEndpoint.org_id == org.id)
        .order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id.desc())
    ).all()


def endpoint_of(org, endpoint_id, *, lock=False):
    """The organization's endpoint (locked until the transaction ends, with ``lock``); another
    organization's is answered as missing."""
    query = sa.select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.org_id == org.id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    endpoint = db.session.scalar(query)
    if endpoint is None:
        raise NoSuchWebhook()
    return endpoint


@atomic
def create_endpoint(org, user, *, url, events, description=None):
    """A new enabled endpoint; only the returned instance carries its secret (``secret``)."""
    url = _checked_url(url)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.org_id == org.id))
    if count >= MAX_ENDPOINTS:
        raise TooManyWebhooks()
    secret = new_secret()
    endpoint = WebhookEndpoint(
        org_id=org.id, url=url, events=sorted(set(events)), description=description, enabled=True,
        secret_encrypted=encrypt(secret), created_by_id=user.id,
    )
    db.session.add(endpoint)
    db.session.flush()
    audit.record(org.id, "webhook.created", target=f"webhook:{endpoint.id}", details={"url": url, "events": endpoint.events})
    endpoint.secret = secret  # not a column: gone once this response is sent
    return endpoint


@atomic
def update_endpoint(org, endpoint_id, changes):
    """Change the URL, the events, the description, or enable / disable it. Enabling starts
    the failure count afresh."""
    endpoint = endpoint_of(org, endpoint_id, lock=True)
    if "url" in changes:
        changes["url"] = _checked_url(changes["url"])
    if "events" in changes:
        changes["events"] = sorted(set(changes["events"]))
    changed = {name: value for name, value in changes.items() if getattr(endpoint, name) != value}
    if not changed:
        return endpoint
    if "enabled" in changed:
        endpoint.disabled_reason = None if changed["enabled"] else DISABLED_BY_ADMIN
        endpoint.failing_since = None
    for name, value in changed.items():
        setattr(endpoint, name, value)
    audit.record(org.id, "webhook.updated", target=f"webhook:{endpoint.id}", details=changed)
    return endpoint


@atomic
def delete_endpoint(org, endpoint_id):
    """Delete the endpoint and its deliveries: nothing more is sent to it."""
    endpoint = endpoint_of(org, endpoint_id, lock=True)
    audit.record(org.id, "webhook.deleted", target=f"webhook:{endpoint.id}", details={"url": endpoint.url})
    db.session.delete(endpoint)


@atomic
def rotate_secret(org, endpoint_id):
    """A new secret; the current one keeps signing too for WEBHOOK_SECRET_OVERLAP_HOURS (an
    older one still overlapping stops now). Returns the new secret."""
    endpoint = endpoint_of(org, endpoint_id, lock=True)
    overlap = timedelta(hours=current_app.config["WEBHOOK_SECRET_OVERLAP_HOURS"])
    secret = new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted if overlap else None
    endpoint.previous_secret_expires_at = utcnow() + overlap if overlap else None
    endpoint.secret_encrypted = encrypt(secret)
    until = endpoint.previous_secret_expires_at
    audit.record(org.id, "webhook.secret_rotated", target=f"webhook:{endpoint.id}",
                 details={"previous_secret_valid_until": until.isoformat() if until else None})
    return secret


@atomic
def send_test_event(org, endpoint_id):
    """A ``webhook.test`` event to this endpoint only; its delivery."""
    endpoint = endpoint_of(org, endpoint_id)
    if not endpoint.enabled:
        raise WebhookDisabled()
    [delivery] = record(org.id, "webhook.test", {
        "endpoint_id": endpoint.id, "message": f"A test event from {current_app.config['APP_NAME']}.",
    }, endpoints=[endpoint])
    return delivery


def deliveries_page(org, endpoint_id, pagination):
    """One page of the endpoint's deliveries, newest first (see ``page_of``)."""
    endpoint = endpoint_of(org, endpoint_id)
    query = (
        sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    )
    return page_of(query, pagination)


@atomic
def retry_delivery(org, endpoint_id, delivery_id):
    """Attempt the delivery again now, whatever its state (a succeeded one is sent again, with
    its ``webhook-id``: receivers drop what they have seen). One attempt: if it fails, a delivery
    whose retries were used up is ``failed`` again."""
    endpoint = endpoint_of(org, endpoint_id, lock=True)
    if not endpoint.enabled:
        raise WebhookDisabled()
    delivery = db.session.scalar(
        sa.select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id)
        .with_for_update(of=WebhookDelivery)
    )
    if delivery is None:
        raise NoSuchDelivery()
    now = utcnow()
    if delivery.leased_until is not None and delivery.leased_until > now:
        raise AttemptInFlight()
    if delivery.status not in OPEN_STATUSES:
        delivery.status, delivery.completed_at = PENDING, None
    delivery.next_attempt_at = now
    delivery_id, attempts = delivery.id, delivery.attempts
    after_commit(lambda: queue_attempt(delivery_id, attempts))
    return delivery
