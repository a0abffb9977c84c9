"""Repairs that run themselves: the worker queues ``sweep`` on ``low`` every
SWEEP_INTERVAL_SECONDS (one worker of many: a Redis lock), and it puts right what a lost Redis,
a killed worker or an outside outage left undone:

- stored webhook events still unapplied an interval after they came in are applied;
- users without a Stripe customer an interval after signup get one;
- settled usage not yet reported to the Stripe meter after an interval is reported;
- AI jobs that can no longer finish are failed, and the reservations of those that never
  started given back (one that started may still be running: it holds its reservation until its
  longest run is over);
- reservations past their time are deleted (work still running renews its own, or lasts no
  longer than it, and settling records the usage even without it);
- social-login flows and one-time codes past their time are deleted;
- mail still unsent whose job is gone is queued again;
- webhook deliveries due whose job is gone (Redis was down when their event was recorded, or
  lost it) are queued again; finished deliveries older than 30 days are forgotten;
- per-seat subscriptions whose quantity is not the member count are brought to it;
- subscriptions of deleted accounts still live in Stripe are canceled;
- what the previous release wrote during a rollout without organizations (users without a
  personal organization, subscriptions, usage, AI jobs and keys without ``org_id``) is
  given to the user's personal organization.

Redis holds only work that PostgreSQL can rebuild: whatever it loses, the next sweep finds in
the database. The `flask billing` commands do the same on demand.
"""
import logging
from datetime import timedelta

from flask import current_app

import sqlalchemy as sa

from saas.ai.models import AiJob
from saas.ai.service import fail_orphaned_jobs
from saas.apikeys.models import ApiKey
from saas.billing.entitlements import refresh_plan
from saas.billing.jobs import cancel_subscriptions_of_deleted_accounts, sync_mismatched_seats
from saas.billing.models import Subscription
from saas.billing.service import create_missing_customers
from saas.billing.webhooks import replay_failed_events
from saas.core.database import atomic, discard
from saas.core.queue import job_app_context
from saas.mail.service import resend_unsent
from saas.oauth.flow import forget_expired as forget_expired_oauth_rows
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs.models import Organization
from saas.orgs.service import ensure_personal_org
from saas.usage.jobs import report_pending_usage
from saas.usage.models import UsageRecord
from saas.users.models import User
from saas.usage.service import forget_expired_reservations
from saas.webhooks.jobs import forget_old_deliveries, queue_lost_deliveries

log = logging.getLogger(__name__)


def settle_time():
    """Work younger than one sweep interval may still be on its way through the queue: it is
    left to its own job."""
    return timedelta(seconds=current_app.config["SWEEP_INTERVAL_SECONDS"])

# At most this much of each kind per sweep, so one sweep stays short; the next takes the rest.
BATCH = 200


def _pending_events():
    applied, failures = replay_failed_events(received_before=utcnow() - settle_time(), limit=BATCH)
    return {"applied": applied, "failed": len(failures)}


def _missing_customers():
    if not current_app.config["STRIPE_SECRET_KEY"]:
        return "billing off"
    created, failures = create_missing_customers(registered_before=utcnow() - settle_time(), limit=BATCH)
    return {"created": created, "failed": len(failures)}


def _unreported_usage():
    config = current_app.config
    if not (config["STRIPE_METER_EVENT_NAME"] and config["STRIPE_SECRET_KEY"]):
        return "metering off"
    reported, failures = report_pending_usage(settled_before=utcnow() - settle_time(), limit=BATCH)
    return {"reported": reported, "failed": len(failures)}


def _seat_counts():
    if not current_app.config["STRIPE_SECRET_KEY"]:
        return "billing off"
    synced, failures = sync_mismatched_seats(limit=BATCH)
    return {"synced": synced, "failed": len(failures)}


def _deleted_accounts_subscriptions():
    if not current_app.config["STRIPE_SECRET_KEY"]:
        return "billing off"
    canceled, failures = cancel_subscriptions_of_deleted_accounts(limit=BATCH)
    return {"canceled": canceled, "failed": len(failures)}


@atomic
def rows_without_org(limit=BATCH):
    """Expand/contract: give what the previous release wrote during a rollout to the personal
    organization of its user. Returns how many rows of each kind were adopted."""
    users = db.session.scalars(
        sa.select(User).outerjoin(Organization, Organization.personal_owner_id == User.id)
        .where(Organization.id.is_(None)).order_by(User.id).limit(limit)
    ).all()
    for user in users:
        ensure_personal_org(user)
    adopted = {"users": len(users)}
    for model in (Subscription, UsageRecord, AiJob, ApiKey):
        personal = sa.select(Organization.id).where(Organization.personal_owner_id == model.user_id).scalar_subquery()
        org_ids = db.session.scalars(
            sa.update(model).where(model.org_id.is_(None), model.user_id.is_not(None)).values(org_id=personal)
            .returning(model.org_id)
        ).all()
        adopted[model.__tablename__] = len(org_ids)
        if model is Subscription:
            for org_id in set(org_ids) - {None}:
                refresh_plan(db.session.get(Organization, org_id))
    return adopted


REPAIRS = {
    "rows_without_org": rows_without_org,
    "webhook_events": _pending_events,
    "stripe_customers": _missing_customers,
    "usage_reports": _unreported_usage,
    "orphaned_ai_jobs": lambda: fail_orphaned_jobs(limit=BATCH),
    "expired_reservations": lambda: forget_expired_reservations(limit=BATCH),
    "expired_oauth_flows": forget_expired_oauth_rows,
    "seat_counts": _seat_counts,
    "deleted_accounts_subscriptions": _deleted_accounts_subscriptions,
    "unsent_mail": lambda: resend_unsent(created_before=utcnow() - settle_time(), limit=BATCH),
    "webhook_deliveries": lambda: queue_lost_deliveries(due_before=utcnow() - settle_time(), limit=BATCH),
    "webhook_history": lambda: forget_old_deliveries(limit=BATCH),
}


@job_app_context
def sweep():
    """Run every repair; one that fails is logged and the others still run."""
    outcome = {}
    for name, repair in REPAIRS.items():
        try:
            outcome[name] = repair()
        except Exception:
            log.exception("sweep: %s failed", name)
            # A failed statement leaves the session's transaction aborted: every later repair
            # would fail with it.
            discard()
            outcome[name] = "error"
    log.info("sweep done", extra={"sweep": outcome})
    return outcome
