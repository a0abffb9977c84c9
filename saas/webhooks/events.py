"""What each event says, recorded where the change happens (``catalog`` lists them).

Packages above this one call these functions in the transaction of their change; the packages
below (organizations) send their signals (``saas.orgs.events``), which land here in the same
transaction.
"""
from saas.orgs import events as org_events
from saas.webhooks.outbox import record, record_once


def _time(moment):
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def ai_job_finished(job, *, status, result=None, error=None):
    """``ai.job.completed`` or ``ai.job.failed`` for ``job`` (an AI job row) ending with
    ``status``. The prompt and the answer stay out: only the user who ran it reads them."""
    if job is None:  # deleted with its account meanwhile
        return []
    succeeded = status == "succeeded"
    data = {
        "job_id": job.id, "user_id": job.user_id, "status": status, "model": job.model,
        "created_at": _time(job.created_at), "finished_at": _time(job.finished_at),
    }
    if succeeded and result is not None:
        data["usage"] = result.get("usage")
    if not succeeded:
        data["error"] = {key: error[key] for key in ("code", "status", "message") if key in (error or {})}
    return record(job.org_id, "ai.job.completed" if succeeded else "ai.job.failed", data)


def subscription_updated(org_id, subscription, *, seats):
    """``subscription.updated``: ``subscription`` (the stored row) as it is now."""
    return record(org_id, "subscription.updated", {
        "subscription_id": subscription.stripe_subscription_id, "plan": subscription.plan,
        "status": subscription.status, "seats": seats, "cancel_at_period_end": subscription.cancel_at_period_end,
        "current_period_end": _time(subscription.current_period_end), "trial_end": _time(subscription.trial_end),
    })


def quota_exceeded(org, status, requested):
    """``usage.quota_exceeded``, once per organization, month and plan (a refused call comes
    back every few seconds; a receiver needs to hear it once). Its own use case: the refused
    call changes nothing to report with."""
    period_start = _time(status.period_start)
    return record_once(org.id, "usage.quota_exceeded", {
        "plan": status.plan, "limit": status.quota, "used": status.used, "reserved": status.reserved,
        "requested": requested, "period_start": period_start, "resets_at": _time(status.resets_at),
    }, once_key=f"usage.quota_exceeded:{org.id}:{period_start}:{status.plan}"[:160])


def _member_joined(org_id, *, user_id, email, role, invitation_id=None, **_):
    if invitation_id is not None:
        record(org_id, "invitation.accepted",
               {"invitation_id": invitation_id, "user_id": user_id, "email": email, "role": role})
    record(org_id, "member.added", {"user_id": user_id, "email": email, "role": role})


def _member_removed(org_id, *, user_id, role=None, left=False, **_):
    record(org_id, "member.removed", {"user_id": user_id, "role": role, "left": left})


def _member_role_changed(org_id, *, user_id, previous_role, role, **_):
    record(org_id, "member.role_changed", {"user_id": user_id, "previous_role": previous_role, "role": role})


def connect_signals():
    org_events.member_joined.connect(_member_joined, weak=False)
    org_events.member_removed.connect(_member_removed, weak=False)
    org_events.member_role_changed.connect(_member_role_changed, weak=False)
