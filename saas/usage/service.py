"""Monthly token quotas of organizations: reserve before a model call, settle after, and what
is left.

A call counts against the quota of the organization it acts for (its plan's PLAN_QUOTAS). It
first reserves the most it may use (its prompt estimate plus max_tokens) and is refused if that
would pass the quota; reservations of one organization, and those of one user, are taken one at
a time, so concurrent calls cannot all see the same remaining tokens or calls in progress. Settling replaces the
reservation by the tokens the provider reports, so an organization ends at most one call's
estimate error past the quota.

A held reservation is also a call in progress: a chat being answered, or an AI job queued or
running (it reserves when it is submitted). A user may hold at most AI_MAX_CONCURRENT of them,
so one account cannot take every request thread or fill the queue. A reservation that is never
settled (its process died) stops counting at its ``expires_at``.
"""
import contextlib
import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import current_app

from saas.core.database import after_commit, atomic, fields_of, in_transaction
from saas.core.errors import TooManyRequests
from saas.core.time import utcnow
from saas.extensions import db
from saas.usage.jobs import report_usage_later
from saas.orgs.models import FREE_PLAN, Organization
from saas.usage.models import RESERVED, SETTLED, UsageRecord
from saas.users import events as user_events
from saas.users.models import User
from saas.webhooks import events as webhook_events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    """A held share of the quota, as plain values: no database connection is kept during the
    call. Whose it is travels with it, so the usage can be recorded even if the row is gone."""

    record_id: int
    tokens: int
    model: str
    user_id: int
    org_id: int | None
    request_id: str | None = None


@dataclass(frozen=True)
class QuotaStatus:
    plan: str
    quota: int
    used: int
    reserved: int
    period_start: datetime
    resets_at: datetime

    @property
    def remaining(self):
        return max(self.quota - self.used - self.reserved, 0)

    def allows(self, tokens):
        return self.used + self.reserved + tokens <= self.quota


def plan_quota(plan):
    """PLAN_QUOTAS for ``plan``; a plan missing there gets the free quota, never an unlimited one."""
    quotas = current_app.config["PLAN_QUOTAS"]
    return quotas.get(plan, quotas.get(FREE_PLAN, 0))


def quota_period(now):
    """The calendar month (UTC) holding ``now``: its start and the start of the next."""
    start = now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, (start + timedelta(days=32)).replace(day=1)


class TooManyCallsInProgress(TooManyRequests):
    def __init__(self, limit):
        super().__init__(
            f"{limit} AI calls or jobs of yours are in progress already (AI_MAX_CONCURRENT); wait for one to end.",
            errors={"in_progress": {"limit": limit}},
            headers={"Retry-After": "5"},
        )


def held(now):
    """The reservations that still hold quota: not settled, not expired."""
    return sa.and_(UsageRecord.status == RESERVED, UsageRecord.expires_at > now)


def _usage_sums(now, start):
    return (
        sa.func.coalesce(
            sa.func.sum(
                sa.case(
                    (UsageRecord.status == SETTLED, UsageRecord.input_tokens + UsageRecord.output_tokens),
                    else_=0,
                )
            ),
            0,
        ),
        sa.func.coalesce(sa.func.sum(sa.case((held(now), UsageRecord.reserved_tokens), else_=0)), 0),
    )


def _month_sums(now, start, *where):
    """``(used, reserved)`` tokens of the records since ``start`` that match ``where``."""
    used, reserved = db.session.execute(
        sa.select(*_usage_sums(now, start)).where(UsageRecord.created_at >= start, *where)
    ).one()
    return int(used), int(reserved)


def quota_status(org):
    now = utcnow()
    start, resets_at = quota_period(now)
    plan = org.effective_plan
    used, reserved = _month_sums(now, start, UsageRecord.org_id == org.id)
    return QuotaStatus(plan, plan_quota(plan), used, reserved, start, resets_at)


def month_totals():
    """``{used, reserved, period_start}``: every organization's tokens this month (for operators)."""
    now = utcnow()
    start, _ = quota_period(now)
    used, reserved = _month_sums(now, start)
    return {"used": used, "reserved": reserved, "period_start": start}


def usage_by_member(org, *, viewer_id, with_addresses):
    """This month's tokens of the organization per user who used any: ``[{user_id, email,
    full_name, used, reserved}]``, most used first (a former member's usage included). Other
    users' address and name only ``with_addresses`` (an admin's view); ``viewer_id``'s own always."""
    now = utcnow()
    start, _ = quota_period(now)
    used, reserved = _usage_sums(now, start)
    rows = db.session.execute(
        sa.select(User.id, User.email, User.full_name, used.label("used"), reserved.label("reserved"))
        .join(UsageRecord, UsageRecord.user_id == User.id)
        .where(UsageRecord.org_id == org.id, UsageRecord.created_at >= start)
        .group_by(User.id, User.email, User.full_name)
        .order_by(sa.desc("used"), User.id)
    ).all()
    return [
        {"user_id": row.id, "used": int(row.used), "reserved": int(row.reserved),
         **({"email": row.email, "full_name": row.full_name} if with_addresses or row.id == viewer_id
            else {"email": None, "full_name": None})}
        for row in rows
    ]


def reserve(org, user, *, model, tokens, hold_for, request_id=None):
    """Hold ``tokens`` of the organization's quota for a call of ``user`` for at most
    ``hold_for`` (a timedelta), or refuse with 429: QuotaExceeded, or TooManyCallsInProgress
    past AI_MAX_CONCURRENT calls of that user. A refusal for the quota is reported to the
    organization's webhooks once the refused transaction is over (in one of its own)."""
    try:
        return _reserve(org, user, model=model, tokens=tokens, hold_for=hold_for, request_id=request_id)
    except QuotaExceeded as refusal:
        if not in_transaction():
            webhook_events.quota_exceeded(org, refusal.quota_status, tokens)
        raise


@atomic
def _reserve(org, user, *, model, tokens, hold_for, request_id=None):
    # The second of two concurrent calls counts only after the first one's reservation is
    # committed: serialised on the organization's row (its quota), then on the user's
    # (AI_MAX_CONCURRENT counts their calls for every organization). Always in this order, the
    # one billing takes them in too (an organization, then its owner's row), so that two
    # transactions never wait for each other. NO KEY: rows referring to the user (sessions,
    # mail) can still be written meanwhile.
    db.session.execute(sa.select(Organization.id).where(Organization.id == org.id).with_for_update())
    db.session.execute(sa.select(User.id).where(User.id == user.id).with_for_update(key_share=True))
    now = utcnow()
    limit = current_app.config["AI_MAX_CONCURRENT"]
    in_progress = db.session.scalar(
        sa.select(sa.func.count()).select_from(UsageRecord).where(UsageRecord.user_id == user.id, held(now))
    )
    if in_progress >= limit:
        raise TooManyCallsInProgress(limit)
    status = quota_status(org)
    if not status.allows(tokens):
        raise QuotaExceeded(status, tokens)
    record = UsageRecord(
        user_id=user.id, org_id=org.id, model=model, status=RESERVED, reserved_tokens=tokens,
        request_id=request_id, expires_at=now + hold_for,
    )
    db.session.add(record)
    db.session.flush()
    return Reservation(record.id, tokens, model, user.id, org.id, request_id)


@contextlib.contextmanager
def reserved(org, user, *, model, tokens, hold_for, request_id=None):
    """``reserve`` for the block; the reservation is given back if the block raises."""
    reservation = reserve(org, user, model=model, tokens=tokens, hold_for=hold_for, request_id=request_id)
    try:
        yield reservation
    except Exception:
        release(reservation)
        raise


@atomic
def extend(reservation, hold_for):
    """Hold a reservation ``hold_for`` from now (a queued job that starts running); False if it
    was released or settled meanwhile."""
    extended = db.session.execute(
        sa.update(UsageRecord)
        .where(UsageRecord.id == reservation.record_id, UsageRecord.status == RESERVED)
        .values(expires_at=utcnow() + hold_for)
    ).rowcount
    return bool(extended)


@atomic
def settle(reservation, *, input_tokens, output_tokens, model=None):
    """Replace the reservation by what the call used, and have it billed. What the provider used
    is always recorded: should the reservation be gone (the call outlived it, or it was given
    back as lost while the call still ran), a settled record of its own takes its place."""
    used = {
        "input_tokens": input_tokens, "output_tokens": output_tokens, "model": (model or reservation.model)[:255],
        "settled_at": utcnow(),
    }
    record_id = reservation.record_id
    settled = db.session.execute(
        sa.update(UsageRecord).where(UsageRecord.id == record_id, UsageRecord.status == RESERVED)
        .values(status=SETTLED, **used)
    ).rowcount
    if not settled:
        if db.session.scalar(sa.select(UsageRecord.id).where(UsageRecord.id == record_id)) is not None:
            return  # settled already
        record = UsageRecord(
            user_id=reservation.user_id, org_id=reservation.org_id, status=SETTLED,
            reserved_tokens=reservation.tokens, request_id=reservation.request_id, **used,
        )
        db.session.add(record)
        db.session.flush()
        log.warning("reservation %s was gone when its call ended; its usage is record %s", record_id, record.id)
        record_id = record.id
    if input_tokens + output_tokens > 0:
        after_commit(functools.partial(report_usage_later, record_id))


@atomic
def forget_expired_reservations(limit=None):
    """Delete reservations past their ``expires_at``: they count no more already; this keeps them
    out of the table. Work still running keeps its reservation from expiring (a stream renews
    it, a job's lasts its longest run); one that ends after all is recorded by ``settle``.
    Returns how many."""
    expired = db.session.scalars(
        sa.select(UsageRecord.id).where(_expired_reservation(utcnow())).limit(limit)
    ).all()
    forgotten = 0
    if expired:
        # Checked again as each row is deleted: one settled or renewed since is left alone.
        forgotten = db.session.execute(
            sa.delete(UsageRecord).where(UsageRecord.id.in_(expired), _expired_reservation(utcnow()))
        ).rowcount
    return forgotten


def _expired_reservation(now):
    return sa.and_(UsageRecord.status == RESERVED, UsageRecord.expires_at <= now)


@atomic
def release(reservation):
    """Give the reservation back: the call failed before the provider used anything. A record
    already settled stays (usage is never given back)."""
    db.session.execute(
        sa.delete(UsageRecord).where(UsageRecord.id == reservation.record_id, UsageRecord.status == RESERVED)
    )


class QuotaExceeded(TooManyRequests):
    """A call would pass the plan's monthly token quota."""

    def __init__(self, status, tokens):
        self.quota_status = status
        resets_at = status.resets_at.isoformat().replace("+00:00", "Z")
        retry_after = int((status.resets_at - utcnow()).total_seconds()) + 1
        super().__init__(
            f"Monthly token quota exceeded: the {status.plan} plan allows {status.quota} tokens a "
            f"month, {status.used + status.reserved} are used or held and this call needs up to "
            f"{tokens}. The quota resets at {resets_at}.",
            errors={
                "quota": {
                    "plan": status.plan,
                    "limit": status.quota,
                    "used": status.used,
                    "reserved": status.reserved,
                    "requested": tokens,
                    "resets_at": resets_at,
                }
            },
            headers={"Retry-After": str(retry_after)},
        )


USAGE_EXPORT = ("id", "org_id", "model", "status", "input_tokens", "output_tokens", "created_at", "settled_at")


def connect_signals():
    user_events.account_export.connect(_export_usage, weak=False)


def _export_usage(user, **_):
    records = db.session.scalars(sa.select(UsageRecord).where(UsageRecord.user_id == user.id).order_by(UsageRecord.id))
    return {"usage": [fields_of(record, USAGE_EXPORT) for record in records]}
