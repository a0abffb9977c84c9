"""Invitations by email: an admin invites an address with a role; the person who owns that
address (verified) accepts or declines with the mailed token.

The token is random and minted when the message is sent; only its SHA-256 is stored. It works
once, for INVITATION_TTL_DAYS, and only for the account whose verified address is the invited
one: an invitation never adds anyone without their consent, nor anyone else.

Each invitation mails someone the sender chose: besides the senders' rate limits
(``saas.orgs.limits``), one organization mails one address at most
INVITATIONS_TO_ONE_ADDRESS_PER_DAY times in 24 hours, counted from the invitations themselves
(revoked and expired ones stay), so revoking and inviting again does not reset it.
"""
import math
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from saas.core.database import atomic
from saas.core.errors import Conflict, DomainError, Forbidden, NotFound, TooManyRequests
from saas.core.permissions import Permission
from saas.core.secrets import sha256
from saas.core.time import utcnow
from saas.extensions import db
from saas.mail import queue_mail, register_link
from saas.orgs import audit, events
from saas.orgs.models import ACCEPTED, DECLINED, EXPIRED, OWNER, PENDING, REVOKED, Invitation, Membership
from saas.orgs.roles import can
from saas.orgs.service import OwnersOnly, PersonalOrganization, lock_org, locked_role, role_of
from saas.users.models import User

LINK_INVITATION = "invitation"
INVITATIONS_TO_ONE_ADDRESS_PER_DAY = 3


class AlreadyMember(Conflict):
    message = "This address already belongs to a member of the organization."


class AlreadyInvited(Conflict):
    message = "This address has a pending invitation already; revoke it to invite again."


class NoSuchInvitation(NotFound):
    message = "No such pending invitation."


class InvalidInvitation(DomainError):
    status = 400
    message = "The invitation is invalid, expired, or was answered already."

    def __init__(self, message=None):
        super().__init__(message, errors={"token": [message or self.message]})


class NotYourInvitation(Forbidden):
    message = "This invitation is for another address: log in as its owner (with a verified address)."


class AddressNotVerified(Forbidden):
    message = "Verify your email address before answering an invitation."


class AddressInvitedTooOften(TooManyRequests):
    message = (
        f"This organization has invited this address {INVITATIONS_TO_ONE_ADDRESS_PER_DAY} times in "
        "the last 24 hours, the most it may; try again later."
    )

    def __init__(self, retry_after):
        super().__init__(errors={"reason": ["address_invited_too_often"]}, headers={"Retry-After": str(retry_after)})


def _hash(token):
    return sha256(token)


@atomic
def invite(org, inviter, *, email, role):
    """Invite ``email`` with ``role`` and mail them the link; returns the invitation. Decided
    under the organization's lock, with the inviter's role read again there."""
    if org.personal:
        raise PersonalOrganization()
    inviter_role = locked_role(org.id, inviter.id, Permission.MEMBERS_INVITE)
    if role == OWNER and inviter_role != OWNER:
        raise OwnersOnly()
    member = db.session.scalar(
        sa.select(Membership.id).join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org.id, User.email == email)
    )
    if member is not None:
        raise AlreadyMember()
    now = utcnow()
    _refuse_a_fourth_mail_to(org, email, now)
    db.session.execute(  # an expired invitation no longer blocks a new one
        sa.update(Invitation)
        .where(Invitation.org_id == org.id, Invitation.email == email, Invitation.status == PENDING,
               Invitation.expires_at <= now)
        .values(status=EXPIRED)
    )
    invitation = Invitation(
        org_id=org.id, email=email, role=role, invited_by_id=inviter.id,
        expires_at=now + timedelta(days=current_app.config["INVITATION_TTL_DAYS"]),
    )
    db.session.add(invitation)
    try:
        db.session.flush()
    except IntegrityError:
        raise AlreadyInvited() from None
    audit.record(org.id, "invitation.created", target=f"invitation:{invitation.id}",
                 details={"email": email, "role": role})
    # The message is the invitee's (their export lists it) when the address has an account now.
    invitee_id = db.session.scalar(sa.select(User.id).where(User.email == email))
    queue_mail(
        "invitation", email, user_id=invitee_id, link=LINK_INVITATION,
        context={
            "invitation_id": invitation.id, "org_name": org.name, "role": role,
            "inviter": inviter.full_name or inviter.email, "days": current_app.config["INVITATION_TTL_DAYS"],
        },
    )
    return invitation


def _refuse_a_fourth_mail_to(org, email, now):
    """429 once the organization invited ``email`` INVITATIONS_TO_ONE_ADDRESS_PER_DAY times in
    the last 24 hours; Retry-After: until the oldest of those is a day old."""
    day = timedelta(days=1)
    recent = db.session.scalars(
        sa.select(Invitation.created_at)
        .where(Invitation.org_id == org.id, Invitation.email == email, Invitation.created_at > now - day)
        .order_by(Invitation.created_at.desc())
    ).all()
    if len(recent) >= INVITATIONS_TO_ONE_ADDRESS_PER_DAY:
        free_again = recent[INVITATIONS_TO_ONE_ADDRESS_PER_DAY - 1] + day
        raise AddressInvitedTooOften(max(1, math.ceil((free_again - now).total_seconds())))


def pending(org):
    return db.session.scalars(
        sa.select(Invitation)
        .where(Invitation.org_id == org.id, Invitation.status == PENDING, Invitation.expires_at > utcnow())
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    ).all()


@atomic
def revoke(org, invitation_id):
    revoked = db.session.execute(
        sa.update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.org_id == org.id, Invitation.status == PENDING)
        .values(status=REVOKED, responded_at=utcnow())
    ).rowcount
    if not revoked:
        raise NoSuchInvitation()
    audit.record(org.id, "invitation.revoked", target=f"invitation:{invitation_id}")


def _open_invitation_for(user, token):
    invitation = None
    if isinstance(token, str) and 0 < len(token) <= 256:
        invitation = db.session.scalar(sa.select(Invitation).where(Invitation.token_hash == _hash(token)))
    if invitation is None or not invitation.is_open:
        raise InvalidInvitation()
    if not user.email_verified:
        raise AddressNotVerified()
    if user.email != invitation.email:
        raise NotYourInvitation()
    return invitation


def _answer(invitation, status, user):
    """Mark the invitation answered, if nobody answered it meanwhile (a token works once)."""
    answered = db.session.execute(
        sa.update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.status == PENDING)
        .values(status=status, responded_at=utcnow(), accepted_by_id=user.id if status == ACCEPTED else None)
    ).rowcount
    if not answered:
        raise InvalidInvitation()


def _inviter_may_still_invite(invitation):
    """An invitation speaks for whoever sent it: it lapses once they could no longer send it
    (removed, demoted, account deleted). Read under the organization's lock, like any change of
    members, so a demotion queued before the acceptance counts."""
    lock_org(invitation.org_id)
    role = role_of(invitation.invited_by_id, invitation.org_id)
    return can(role, Permission.MEMBERS_INVITE) and (invitation.role != OWNER or role == OWNER)


@atomic
def accept(user, token):
    """Join the organization with the invited role; returns the membership."""
    invitation = _open_invitation_for(user, token)
    if not _inviter_may_still_invite(invitation):
        raise InvalidInvitation("The invitation lapsed: whoever sent it can no longer invite.")
    org_id = invitation.org_id
    _answer(invitation, ACCEPTED, user)
    membership = Membership(org_id=org_id, user_id=user.id, role=invitation.role)
    db.session.add(membership)
    try:
        db.session.flush()
    except IntegrityError:
        raise AlreadyMember() from None
    audit.record(org_id, "member.joined", target=f"user:{user.id}",
                 details={"role": invitation.role, "invitation_id": invitation.id})
    events.member_joined.send(org_id, user_id=user.id, email=user.email, role=invitation.role, invitation_id=invitation.id)
    events.members_changed.send(org_id)
    return membership


@atomic
def decline(user, token):
    invitation = _open_invitation_for(user, token)
    _answer(invitation, DECLINED, user)
    audit.record(invitation.org_id, "invitation.declined", target=f"invitation:{invitation.id}")


def _invitation_link(message):
    """A fresh token for a still-open invitation; its hash replaces any earlier one's."""
    invitation = db.session.get(Invitation, message.context["invitation_id"])
    if invitation is None or not invitation.is_open:
        return None
    token = secrets.token_urlsafe(32)
    invitation.token_hash = _hash(token)  # in the use case that sends the message
    config = current_app.config
    return {"link": f"{config['FRONTEND_URL'].rstrip('/')}{config['INVITATION_PATH']}?token={token}"}


def connect_mail():
    register_link(LINK_INVITATION, _invitation_link)
