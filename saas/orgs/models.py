"""Organizations, who belongs to them with which role, invitations, and the audit log."""
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

FREE_PLAN = "free"
OWNER, ADMIN, MEMBER = "owner", "admin", "member"
ROLES = (OWNER, ADMIN, MEMBER)
PENDING, ACCEPTED, DECLINED, REVOKED, EXPIRED = "pending", "accepted", "declined", "revoked", "expired"


class Organization(db.Model):
    """Who pays and whose quota is used: the Stripe customer, the subscriptions and the plan
    belong here. Every user has one personal organization, of which they are the only owner."""

    __tablename__ = "organizations"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    slug: Mapped[str] = mapped_column(sa.String(80), unique=True, nullable=False)
    personal: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    # The user a personal organization belongs to (one each); None for a team.
    personal_owner_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True, index=True)
    # How many of the organization's Stripe customers were deleted: the next needs a new idempotency key.
    stripe_customers_deleted: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    # Written by billing whenever a subscription changes, so reading the plan costs no query.
    plan: Mapped[str] = mapped_column(sa.String(64), nullable=False, default=FREE_PLAN, server_default=FREE_PLAN)
    plan_past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Members must have two-factor on (or have logged in through the organization's SSO) to act in it.
    require_mfa: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)

    # ``user.personal_org`` is defined here, so that users (the package below) needs no import.
    personal_owner = relationship("User", backref=backref("personal_org", uselist=False, lazy="select"))

    @property
    def effective_plan(self):
        """The plan whose features the organization has now: "free" unless a subscription grants
        one. A past_due subscription keeps its plan for BILLING_PAST_DUE_GRACE_DAYS."""
        if self.plan_past_due_since is not None:
            grace = timedelta(days=current_app.config["BILLING_PAST_DUE_GRACE_DAYS"])
            if utcnow() >= self.plan_past_due_since + grace:
                return FREE_PLAN
        return self.plan

    def __repr__(self):
        return f"<Organization {self.id}>"


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("org_id", "user_id", name="uq_memberships_org_id_user_id"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    joined_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )

    user = relationship("User", lazy="joined")


class Invitation(db.Model):
    """An invitation by email. Its token is random, mailed once and stored only as a hash."""

    __tablename__ = "invitations"
    __table_args__ = (
        # At most one pending invitation per organization and address.
        sa.Index(
            "uq_invitations_pending", "org_id", "email", unique=True,
            postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"),
        ),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True, nullable=False)
    email: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    # SHA-256 of the token in the mailed link; set when the message is sent.
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=PENDING, server_default=PENDING)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))

    organization = relationship(Organization, lazy="joined")

    @property
    def is_open(self):
        return self.status == PENDING and self.expires_at > utcnow()


class AuditEvent(db.Model):
    """Who did what in an organization, written in the same transaction as the change. Kept when
    the organization or the actor is deleted: ``org_id`` has no foreign key, so a deleted
    organization's trail still names it; a deleted actor's id becomes null."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_org_id_created_at", "org_id", "created_at"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(sa.Integer)
    actor_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    target: Mapped[str | None] = mapped_column(sa.String(255))
    details: Mapped[dict] = mapped_column(sa.JSON, nullable=False, default=dict)
    ip_address: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
