"""Delivering: one job per delivery and attempt, on the ``low`` queue.

A job claims its attempt (the delivery's ``attempts`` must still be the one it was queued for,
and no other attempt in flight), sends with no transaction open, then records the outcome: a 2xx
succeeds; anything else is retried after the next wait of WEBHOOK_RETRY_SCHEDULE (jittered) until
it is used up; a 410 disables the endpoint at once, and so does failing every attempt for
WEBHOOK_DISABLE_AFTER_HOURS (the owners get a mail). One endpoint's slow or failing receiver holds
its own jobs only, each for at most WEBHOOK_TIMEOUT_SECONDS.
"""
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from saas.core.database import after_commit, atomic, transaction
from saas.core.queue import LOW, enqueue, job_app_context, job_id, job_is_lost
from saas.core.secrets import decrypt
from saas.core.time import utcnow
from saas.extensions import db
from saas.mail import queue_mail
from saas.orgs import audit
from saas.orgs.models import OWNER, Membership, Organization
from saas.users.models import User
from saas.webhooks import transport
from saas.webhooks.models import (
    DISABLED_FAILING,
    DISABLED_GONE,
    FAILED,
    OPEN_STATUSES,
    RETRYING,
    SUCCEEDED,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from saas.webhooks.signing import signed_headers

log = logging.getLogger(__name__)

DELIVERY_JOB = "webhook"
# An attempt in flight holds its delivery this long past the timeout; a killed worker's is then free.
LEASE_MARGIN = timedelta(seconds=60)
JITTER = 0.2
GONE = 410
# Finished deliveries, and events left without any, are forgotten after this long.
RETENTION = timedelta(days=30)
MAX_ERROR_LENGTH = 600


def delivery_job_id(delivery_id, attempts):
    """The job that makes the attempt after ``attempts`` ones: one job per attempt."""
    return job_id(DELIVERY_JOB, f"{delivery_id}-{attempts}")


def queue_deliveries(delivery_ids):
    """Queue the first attempt of each delivery (after the commit that stored them)."""
    for delivery_id in delivery_ids:
        queue_attempt(delivery_id, 0)


def queue_attempt(delivery_id, attempts, at=None):
    """Queue the attempt after ``attempts`` ones, now or ``at``. If Redis cannot be reached the
    delivery waits in the database for the worker's sweep."""
    try:
        enqueue(
            deliver, delivery_id, attempts, queue=LOW, backoff=None, at=at,
            job_id=delivery_job_id(delivery_id, attempts),
            job_timeout=current_app.config["WEBHOOK_TIMEOUT_SECONDS"] + int(LEASE_MARGIN.total_seconds()),
        )
    except RedisError:
        log.warning("webhook delivery %s waits in the database: Redis is unavailable; the worker's sweep queues it",
                    delivery_id)


@dataclass(frozen=True)
class Attempt:
    url: str
    event_id: str
    body: str
    signing_secrets: tuple


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def succeeded(self):
        return self.status_code is not None and 200 <= self.status_code < 300


@job_app_context
def deliver(delivery_id, attempts):
    """Make the delivery's attempt number ``attempts + 1``, unless it was made or is being made."""
    attempt = claim(delivery_id, attempts)
    if attempt is None:
        return None
    outcome = send(attempt)
    settle(delivery_id, outcome)
    log.info("webhook delivery attempted", extra={
        "webhook_delivery_id": delivery_id, "attempt": attempts + 1, "status_code": outcome.status_code,
        "succeeded": outcome.succeeded,
    })
    return outcome.succeeded


@atomic
def claim(delivery_id, attempts):
    """Take the attempt (a lease until the timeout has passed); None when it is not this job's."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["WEBHOOK_TIMEOUT_SECONDS"]) + LEASE_MARGIN
    claimed = db.session.execute(
        sa.update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == attempts,
            WebhookDelivery.status.in_(OPEN_STATUSES),
            sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
        )
        .values(leased_until=now + lease)
    ).rowcount
    if not claimed:
        return None
    delivery = db.session.execute(
        sa.select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).execution_options(populate_existing=True)
    ).scalar_one()
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    if not endpoint.enabled:
        _close(delivery, FAILED, now, error="not sent: the endpoint is disabled")
        return None
    signing_secrets = [decrypt(endpoint.secret_encrypted)]
    if endpoint.previous_secret_encrypted and endpoint.previous_secret_expires_at > now:
        signing_secrets.append(decrypt(endpoint.previous_secret_encrypted))
    return Attempt(endpoint.url, delivery.event.id, delivery.event.body, tuple(signing_secrets))


def send(attempt):
    """One request; its Outcome (never raises for the receiver's sake)."""
    config = current_app.config
    headers = {
        **signed_headers(attempt.event_id, attempt.body, attempt.signing_secrets),
        "Content-Type": "application/json",
        "User-Agent": f"{config['APP_NAME']}-Webhooks/{config['APP_VERSION']}",
        "Connection": "close",
    }
    try:
        answer = transport.post(
            attempt.url, attempt.body.encode(), headers,
            timeout=config["WEBHOOK_TIMEOUT_SECONDS"], allow_loopback=config["WEBHOOKS_ALLOW_LOOPBACK"],
        )
    except transport.NotDelivered as error:
        return Outcome(None, str(error)[:MAX_ERROR_LENGTH])
    if 200 <= answer.status < 300:
        return Outcome(answer.status, None)
    said = answer.body.decode("utf-8", "replace").strip()
    error = f"HTTP {answer.status}" + (" (redirects are not followed)" if 300 <= answer.status < 400 else "")
    return Outcome(answer.status, (f"{error}: {said}" if said else error)[:MAX_ERROR_LENGTH])


@atomic
def settle(delivery_id, outcome):
    """Record an attempt's outcome; retry, disable, or close the delivery accordingly."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:  # the endpoint was deleted meanwhile
        return
    # The endpoint first, then its delivery: the order every writer of both follows.
    endpoint = db.session.execute(
        sa.select(WebhookEndpoint).where(WebhookEndpoint.id == delivery.endpoint_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    delivery = db.session.execute(
        sa.select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update(of=WebhookDelivery)
        .execution_options(populate_existing=True)
    ).scalar_one()
    now = utcnow()
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    if outcome.succeeded:
        endpoint.failing_since = None
        _close(delivery, SUCCEEDED, now)
        return
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    if endpoint.enabled and outcome.status_code == GONE:
        disable(endpoint, DISABLED_GONE, outcome.error)
    elif endpoint.enabled and now - endpoint.failing_since >= _disable_after():
        disable(endpoint, DISABLED_FAILING, outcome.error)
    schedule = current_app.config["WEBHOOK_RETRY_SCHEDULE"]
    if not endpoint.enabled or delivery.attempts > len(schedule):
        _close(delivery, FAILED, now, error=outcome.error)
        return
    wait = schedule[delivery.attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    delivery.status, delivery.last_error, delivery.leased_until = RETRYING, outcome.error, None
    delivery.next_attempt_at = due = now + timedelta(seconds=wait)
    attempts = delivery.attempts
    after_commit(lambda: queue_attempt(delivery_id, attempts, at=due))


def _close(delivery, status, now, *, error=None):
    delivery.status, delivery.completed_at, delivery.last_error = status, now, error
    delivery.next_attempt_at = delivery.leased_until = None


def _disable_after():
    return timedelta(hours=current_app.config["WEBHOOK_DISABLE_AFTER_HOURS"])


def disable(endpoint, reason, last_error):
    """Stop sending to the endpoint (the caller's transaction): audited, and its organization's
    owners mailed."""
    endpoint.enabled, endpoint.disabled_reason = False, reason
    audit.record(endpoint.org_id, "webhook.disabled", target=f"webhook:{endpoint.id}",
                 details={"url": endpoint.url, "reason": reason, "last_error": last_error})
    context = {
        "url": endpoint.url, "reason": reason, "last_error": last_error or "",
        "hours": current_app.config["WEBHOOK_DISABLE_AFTER_HOURS"],
    }
    _mail_owners(endpoint.org_id, context)  # in this transaction: sent only if the disabling commits
    log.warning("webhook endpoint disabled", extra={"webhook_endpoint_id": endpoint.id, "reason": reason})


def _mail_owners(org_id, context):
    org = db.session.get(Organization, org_id)
    if org is None:
        return
    owners = db.session.execute(
        sa.select(User.id, User.email).join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == org_id, Membership.role == OWNER, User.is_active.is_(True))
        .order_by(User.id)
    ).all()
    for owner in owners:
        queue_mail("webhook_disabled", owner.email, user_id=owner.id, context={"org_name": org.name, **context})


def queue_lost_deliveries(due_before, limit=None):
    """Queue again the open deliveries due before ``due_before`` whose job is gone (Redis lost
    it, or was down when they were recorded; a worker died mid-attempt). Returns how many."""
    with transaction():  # ended before Redis is asked about each
        now = utcnow()
        due = db.session.execute(
            sa.select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(
                WebhookDelivery.status.in_(OPEN_STATUSES), WebhookDelivery.next_attempt_at < due_before,
                sa.or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
            )
            .order_by(WebhookDelivery.next_attempt_at).limit(limit)
        ).all()
    queued = 0
    for delivery_id, attempts in due:
        if job_is_lost(delivery_job_id(delivery_id, attempts)):
            queue_attempt(delivery_id, attempts)
            queued += 1
    return queued


@atomic
def forget_old_deliveries(limit=None):
    """Delete deliveries finished more than RETENTION ago, then events left without any.
    Returns how many deliveries."""
    cutoff = utcnow() - RETENTION
    old = db.session.scalars(
        sa.select(WebhookDelivery.id)
        .where(WebhookDelivery.status.not_in(OPEN_STATUSES), WebhookDelivery.completed_at < cutoff)
        .limit(limit)
    ).all()
    if old:
        db.session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.id.in_(old)))
    orphaned = sa.select(WebhookDelivery.id).where(WebhookDelivery.event_id == WebhookEvent.id).exists()
    db.session.execute(sa.delete(WebhookEvent).where(WebhookEvent.created_at < cutoff, ~orphaned))
    return len(old)
