"""The users table: the seed's columns, whether the address is verified, and the security stamp."""
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db
from saas.users.passwords import has_usable_password

FREE_PLAN = "free"


def new_security_stamp():
    return secrets.token_hex(16)


def deleted_address(user_id):
    """What stands where a deleted account's address was (its row, and records that named it)."""
    return f"deleted-{user_id}@deleted.invalid"


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    email: Mapped[str] = mapped_column(sa.String, unique=True, index=True, nullable=False)
    hashed_password: Mapped[str] = mapped_column(sa.String, nullable=False)
    full_name: Mapped[str | None] = mapped_column(sa.String)
    is_active: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=True, server_default=sa.true()
    )
    is_superuser: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    # True once the owner opened a link mailed to the address (or reset the password with one).
    email_verified: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)
    # Changes whenever the account's security changes (password changed or reset, address changed,
    # logout-all, deactivation): every link mailed for the account is bound to the stamp it was
    # issued under (``saas.users.tokens``), so such a change voids them all. Null on rows the
    # previous release wrote; it counts as a stamp like any other until the first change.
    security_stamp: Mapped[str | None] = mapped_column(sa.String(32), default=new_security_stamp)
    # Whether logging in needs a second factor (a confirmed ``TotpCredential``): kept in step with
    # it, on this row so that the gate and organizations' policies read it without a query.
    mfa_enabled: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    # Set when the owner deleted the account: the row stays, without personal data, because
    # usage and billing records that must be kept for accounting point at it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Billing moved to organizations (the personal one: ``user.personal_org``). These columns
    # are what the previous release reads; kept in step for a personal organization
    # (``saas.billing.entitlements.mirror_to_owner``) until a later release drops them.
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String, unique=True, index=True)
    stripe_customers_deleted: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    plan: Mapped[str] = mapped_column(
        sa.String(64), nullable=False, default=FREE_PLAN, server_default=FREE_PLAN
    )
    plan_past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def has_password(self):
        """False for an account made by a social login until its owner sets a password."""
        return has_usable_password(self.hashed_password)

    def rotate_security_stamp(self):
        """Void every link mailed for the account so far (``saas.users.tokens``); the caller commits."""
        self.security_stamp = new_security_stamp()

    def __repr__(self):
        return f"<User {self.id}>"


class TotpCredential(db.Model):
    """A user's authenticator app (RFC 6238): the shared secret, encrypted at rest
    (``saas.core.secrets``). Unconfirmed (``confirmed_at`` null) between setup and the first code;
    ``last_used_step`` is the time step of the last code accepted, so no code works twice."""

    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(sa.Text, nullable=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )


class RecoveryCode(db.Model):
    """One of a user's single-use recovery codes, stored as a salted SHA-256 only."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    salt: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    code_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
