"""`flask billing prune-events` forgets old applied events and never an unapplied one."""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from saas.billing.models import StripeEvent
from saas.extensions import db


def _stored_event(event_id, *, days_old, applied):
    received = datetime.now(timezone.utc) - timedelta(days=days_old)
    db.session.add(
        StripeEvent(
            id=event_id,
            type="invoice.paid",
            payload={"id": event_id},
            received_at=received,
            processed_at=received if applied else None,
        )
    )
    db.session.commit()


def test_prune_events_deletes_old_applied_events_only(client):
    _stored_event("evt_old_applied", days_old=120, applied=True)
    _stored_event("evt_old_unapplied", days_old=120, applied=False)
    _stored_event("evt_recent_applied", days_old=5, applied=True)

    result = client.application.test_cli_runner().invoke(args=["billing", "prune-events", "--keep-days", "90"])

    assert result.exit_code == 0, result.output
    assert "deleted 1 events" in result.output
    remaining = set(db.session.scalars(sa.select(StripeEvent.id)))
    assert remaining == {"evt_old_unapplied", "evt_recent_applied"}
