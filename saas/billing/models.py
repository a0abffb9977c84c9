"""Stripe state we keep: received webhook events and subscriptions."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

# Stripe's statuses of a subscription that is over for good.
ENDED_STATUSES = ("canceled", "incomplete_expired")


class StripeEvent(db.Model):
    """A webhook event; the primary key on Stripe's id is what makes delivery exactly-once."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(255), nullable=False, index=True)
    payload: Mapped[dict] = mapped_column(sa.JSON, nullable=False)
    stripe_created: Mapped[int | None] = mapped_column(sa.BigInteger)
    received_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    processing_error: Mapped[str | None] = mapped_column(sa.Text)


class Subscription(db.Model):
    """Our copy of a Stripe subscription, always written from what Stripe says now."""

    __tablename__ = "subscriptions"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    stripe_subscription_id: Mapped[str] = mapped_column(sa.String(255), unique=True, nullable=False)
    # The organization it bills; kept (null) if the organization is deleted.
    org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id", ondelete="SET NULL"), index=True)
    # Before organizations, subscriptions belonged to users: still written for a personal
    # organization's owner while the previous release may run (expand/contract); unused here.
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    stripe_customer_id: Mapped[str] = mapped_column(sa.String(255), index=True, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    price_id: Mapped[str | None] = mapped_column(sa.String(255))
    # The STRIPE_PLANS name of price_id when it was written; None for a price not configured.
    plan: Mapped[str | None] = mapped_column(sa.String(64))
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The plan item's quantity: the seats of a per-seat plan (STRIPE_SEAT_PLANS).
    quantity: Mapped[int | None] = mapped_column(sa.Integer)
    # Stripe has no "past due since"; the grace period (BILLING_PAST_DUE_GRACE_DAYS) counts from
    # when this server first saw the subscription past_due.
    past_due_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)
