"""What organizations do when an account is deleted or exported (``saas.users.events``)."""
import sqlalchemy as sa

from saas.core.database import fields_of
from saas.core.errors import Conflict
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs import audit, events
from saas.orgs.models import OWNER, PENDING, REVOKED, AuditEvent, Invitation, Membership, Organization
from saas.orgs.service import lock_org, owner_count
from saas.users import events as user_events
from saas.users.models import deleted_address

DELETED_ACCOUNT_NAME = "Deleted account"


class LastOwnerOfTeams(Conflict):
    def __init__(self, orgs):
        names = ", ".join(org.name for org in orgs)
        super().__init__(
            f"You are the last owner of {names}: make someone else an owner, or delete it, first.",
            errors={"organizations": [org.id for org in orgs]},
        )


def connect_signals():
    user_events.account_audited.connect(_record_account_event, weak=False)
    user_events.account_deleting.connect(_leave_every_team, weak=False)
    user_events.account_deleting.connect(_forget_personal_data, weak=False)
    user_events.account_export.connect(_export, weak=False)


def _record_account_event(user, *, action, details, **_):
    """A change to an account's security, in the audit log with no organization."""
    audit.record(None, action, target=f"user:{user.id}", details=details)


def _team_memberships(user_id):
    return db.session.execute(
        sa.select(Membership, Organization)
        .join(Organization, Organization.id == Membership.org_id)
        .where(Membership.user_id == user_id, Organization.personal.is_(False))
        .order_by(Organization.id)
    ).all()


def _leave_every_team(user, **_):
    """In the deletion's transaction: refuse while the user is a team's last owner; else leave
    every team (their keys for it are revoked), give up pending invitations to their address,
    and take the name off the personal organization, which stays for its billing records."""
    memberships = _team_memberships(user.id)
    for membership, org in memberships:
        lock_org(org.id)  # in id order, like every lock of several organizations
    sole = [org for membership, org in memberships if membership.role == OWNER and owner_count(org.id) <= 1]
    if sole:
        raise LastOwnerOfTeams(sole)
    for membership, org in memberships:
        db.session.delete(membership)
        audit.record(org.id, "member.left", target=f"user:{user.id}",
                     details={"role": membership.role, "reason": "account deleted"})
        events.member_removed.send(org.id, user_id=user.id, keep_api_keys=False, role=membership.role, left=True)
        events.members_changed.send(org.id)  # its seat job waits for this transaction's lock
    db.session.execute(
        sa.update(Invitation).where(Invitation.email == user.email, Invitation.status == PENDING)
        .values(status=REVOKED, responded_at=utcnow())
    )
    if user.personal_org is not None:
        user.personal_org.name = DELETED_ACCOUNT_NAME


def _forget_personal_data(user, **_):
    """In the deletion's transaction: the records kept for accounting keep the account's id and
    lose its personal data. Invitations to its address and audit events that name it (an
    invitation, an operator's action about it) name the deleted account's placeholder address
    instead; the addresses it acted from are forgotten."""
    placeholder = deleted_address(user.id)
    db.session.execute(sa.update(Invitation).where(Invitation.email == user.email).values(email=placeholder))
    naming = db.session.scalars(
        sa.select(AuditEvent).where(
            sa.or_(AuditEvent.target == f"user:{user.id}", AuditEvent.details["email"].as_string() == user.email)
        )
    )
    for event in naming:
        if "email" in (event.details or {}):
            event.details = {**event.details, "email": placeholder}
    db.session.execute(
        sa.update(AuditEvent).where(AuditEvent.actor_user_id == user.id).values(ip_address=None)
    )


AUDIT_EXPORT = ("org_id", "action", "target", "details", "ip_address", "created_at")
INVITATION_EXPORT = ("org_id", "role", "status", "created_at", "expires_at", "responded_at")


def _export(user, **_):
    organizations = db.session.execute(
        sa.select(Organization, Membership)
        .join(Membership, Membership.org_id == Organization.id)
        .where(Membership.user_id == user.id)
        .order_by(Organization.id)
    ).all()
    return {
        "organizations": [
            {**fields_of(org, ("id", "name", "slug", "personal")), "role": membership.role,
             "joined_at": membership.joined_at}
            for org, membership in organizations
        ],
        # Found by the account that accepted them, never by the address: another account may
        # have had it before.
        "invitations": [
            fields_of(invitation, INVITATION_EXPORT)
            for invitation in db.session.scalars(
                sa.select(Invitation).where(Invitation.accepted_by_id == user.id).order_by(Invitation.id)
            )
        ],
        "audit_events": [
            fields_of(event, AUDIT_EXPORT)
            for event in db.session.scalars(
                sa.select(AuditEvent).where(AuditEvent.actor_user_id == user.id).order_by(AuditEvent.id)
            )
        ],
    }
