"""The users table: the seed's columns, plus the plan billing keeps current on the row."""
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

FREE_PLAN = "free"


class User(db.Model):
    __tablename__ = "users"

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
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String, unique=True, index=True)
    # How many of the user's Stripe customers were deleted: the next one needs a new idempotency key.
    stripe_customers_deleted: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)
    # Written by billing whenever a subscription changes, so reading the plan costs no query:
    # the plan of the current subscription, and when it went past_due if it is.
    plan: Mapped[str] = mapped_column(
        sa.String(64), nullable=False, default=FREE_PLAN, server_default=FREE_PLAN
    )
    plan_past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def effective_plan(self):
        """The plan whose features the user has now: "free" unless a subscription grants one.

        A past_due subscription keeps its plan for BILLING_PAST_DUE_GRACE_DAYS.
        """
        if self.plan_past_due_since is not None:
            grace = timedelta(days=current_app.config["BILLING_PAST_DUE_GRACE_DAYS"])
            if utcnow() >= self.plan_past_due_since + grace:
                return FREE_PLAN
        return self.plan

    def __repr__(self):
        return f"<User {self.id}>"
