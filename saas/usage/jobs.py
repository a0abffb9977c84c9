"""Usage reporting to Stripe Billing meters, run by ``rq worker``."""
import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError

from saas.billing import gateway
from saas.billing.service import ensure_customer
from saas.core.database import one_by_one, transaction
from saas.core.queue import HIGH, enqueue, job_app_context
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs.models import Organization
from saas.usage.models import SETTLED, UsageRecord

log = logging.getLogger(__name__)

# Stripe refuses meter events more than 35 days old.
REPORTABLE_AGE = timedelta(days=35)


def meter_event_identifier(record):
    """Derived from the record, so every retry of its report is the same event to Stripe."""
    return f"saas-usage-{record.id}-{int(record.created_at.timestamp())}"


@job_app_context
def report_usage_to_stripe(record_id):
    """Send one settled usage record to the STRIPE_METER_EVENT_NAME meter. Raises so RQ retries."""
    record = db.session.get(UsageRecord, record_id)
    if record is None or record.status != SETTLED or record.reported_at is not None:
        return None
    org = db.session.get(Organization, record.org_id) if record.org_id is not None else None
    if org is None:
        log.warning("usage record %s belongs to no organization any more; not reported", record_id)
        return None
    sent = gateway.create_meter_event(
        event_name=current_app.config["STRIPE_METER_EVENT_NAME"],
        customer_id=ensure_customer(org),
        value=record.total_tokens,
        identifier=meter_event_identifier(record),
        timestamp=record.created_at.timestamp(),
    )
    if not sent:
        log.info("usage record %s was already reported to Stripe", record_id)
    with transaction():
        record.reported_at = utcnow()
    return sent


def report_usage_later(record_id):
    """Queue the report (inline without Redis); a no-op when usage is not billed through Stripe."""
    config = current_app.config
    if not (config["STRIPE_METER_EVENT_NAME"] and config["STRIPE_SECRET_KEY"]):
        return None
    try:
        return enqueue(report_usage_to_stripe, record_id, queue=HIGH)
    except RedisError:
        log.warning("could not queue the Stripe report of usage record %s", record_id)
        return None


def report_pending_usage(settled_before=None, limit=None):
    """Report every settled record Stripe has not confirmed yet (its job could not be queued,
    or gave up; settled before ``settled_before`` when given: a younger one's job may still be
    queued). Returns the count reported and ``[(record_id, error), ...]``."""
    since = utcnow() - REPORTABLE_AGE
    query = sa.select(UsageRecord.id).where(
        UsageRecord.status == SETTLED,
        UsageRecord.reported_at.is_(None),
        UsageRecord.org_id.is_not(None),
        UsageRecord.created_at > since,
        UsageRecord.input_tokens + UsageRecord.output_tokens > 0,
    )
    if settled_before is not None:
        query = query.where(UsageRecord.settled_at < settled_before)
    record_ids = db.session.scalars(query.order_by(UsageRecord.id).limit(limit)).all()
    return one_by_one(record_ids, report_usage_to_stripe)
