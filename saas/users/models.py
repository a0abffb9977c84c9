"""The users table: the seed's columns, and whether the address is verified."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

FREE_PLAN = "free"


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
    # Set when the owner deleted the account: the row stays, without personal data, because
    # usage and billing records that must be kept for accounting point at it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Billing moved to organisations (the personal one: ``user.personal_org``). These columns
    # are what the previous release reads; kept in step for a personal organisation
    # (``saas.billing.entitlements.mirror_to_owner``) until a later release drops them.
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String, unique=True, index=True)
    stripe_customers_deleted: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    plan: Mapped[str] = mapped_column(
        sa.String(64), nullable=False, default=FREE_PLAN, server_default=FREE_PLAN
    )
    plan_past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self):
        return f"<User {self.id}>"
