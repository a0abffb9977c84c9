"""The audit log of an organization: one event per membership, role, invitation, key and
billing action, added to the session of the change so both commit together."""
import sqlalchemy as sa

from saas.core.actor import current_actor
from saas.core.database import page_of
from saas.extensions import db
from saas.orgs.models import AuditEvent


def record(org_id, action, *, target=None, details=None):
    """Add an event (the caller commits it with the change it describes). The actor and their
    address come from the request; in a job or a webhook there is none."""
    actor = current_actor.get()
    db.session.add(
        AuditEvent(
            org_id=org_id,
            action=action,
            target=None if target is None else str(target)[:255],
            details=details or {},
            actor_user_id=actor.user_id if actor else None,
            ip_address=actor.ip_address if actor else None,
        )
    )


def events_page(org_id, pagination):
    """One page of the organization's events, newest first (see ``page_of``)."""
    return page_of(newest_first(sa.select(AuditEvent).where(AuditEvent.org_id == org_id)), pagination)


def newest_first(query):
    return query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
