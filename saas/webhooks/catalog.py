"""The event types an endpoint can subscribe to: what each means and what its ``data`` holds.

Every payload is ``{"type", "timestamp", "data"}``; ``data`` always has the ``org_id`` and carries
ids and the fields a receiver needs, never a secret, never another organization's data, and
nothing a member could not read through the API themselves (an AI job's prompt and answer stay
with the user who ran it: fetch them with ``GET /api/v1/ai/jobs/{job_id}``).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    type: str
    description: str
    example: dict


_USAGE = {"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}

EVENT_TYPES = {
    event.type: event
    for event in (
        EventType(
            "ai.job.completed", "A background AI job finished with an answer.",
            {"org_id": 7, "job_id": "5b0c4b1e-8f4e-4d7f-9a43-3c1f0d2b9e11", "user_id": 12, "status": "succeeded",
             "model": "gpt-4o-mini", "usage": _USAGE, "created_at": "2026-01-05T10:00:00Z",
             "finished_at": "2026-01-05T10:00:04Z"},
        ),
        EventType(
            "ai.job.failed", "A background AI job failed; `error` is the answer the API would have given.",
            {"org_id": 7, "job_id": "5b0c4b1e-8f4e-4d7f-9a43-3c1f0d2b9e11", "user_id": 12, "status": "failed",
             "model": "gpt-4o-mini", "error": {"code": 502, "status": "Bad Gateway",
                                               "message": "The model provider failed."},
             "created_at": "2026-01-05T10:00:00Z", "finished_at": "2026-01-05T10:00:04Z"},
        ),
        EventType(
            "subscription.updated", "The organization's subscription changed: created, plan, status or seats.",
            {"org_id": 7, "subscription_id": "sub_1QxYz", "plan": "team", "status": "active", "seats": 5,
             "cancel_at_period_end": False, "current_period_end": "2026-02-05T10:00:00Z", "trial_end": None},
        ),
        EventType(
            "member.added", "Someone joined the organization.",
            {"org_id": 7, "user_id": 12, "email": "ada@example.com", "role": "member"},
        ),
        EventType(
            "member.removed", "A member left or was removed (`left`: they left, or deleted their account).",
            {"org_id": 7, "user_id": 12, "role": "member", "left": False},
        ),
        EventType(
            "member.role_changed", "A member's role changed.",
            {"org_id": 7, "user_id": 12, "previous_role": "member", "role": "admin"},
        ),
        EventType(
            "invitation.accepted", "An invitation was accepted (a `member.added` follows).",
            {"org_id": 7, "invitation_id": 3, "user_id": 12, "email": "ada@example.com", "role": "member"},
        ),
        EventType(
            "usage.quota_exceeded",
            "A call was refused for the monthly token quota: sent once per month and plan.",
            {"org_id": 7, "plan": "free", "limit": 20000, "used": 19950, "reserved": 0, "requested": 120,
             "period_start": "2026-01-01T00:00:00Z", "resets_at": "2026-02-01T00:00:00Z"},
        ),
        EventType(
            "webhook.test", "Sent by `POST .../webhooks/{id}/test`, to that endpoint only.",
            {"org_id": 7, "endpoint_id": 4, "message": "A test event from saas."},
        ),
    )
}
