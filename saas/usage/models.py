"""One row per model call: first a reservation against the quota, then the tokens it used."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

RESERVED = "reserved"
SETTLED = "settled"


class UsageRecord(db.Model):
    __tablename__ = "usage_records"
    __table_args__ = (
        sa.Index("ix_usage_records_user_id_created_at", "user_id", "created_at"),
        sa.Index("ix_usage_records_org_id_created_at", "org_id", "created_at"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    # Who made the call, and whose quota (and Stripe customer) it counts against.
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # No foreign key: usage is kept for accounting after its organization is deleted, under its id.
    org_id: Mapped[int | None] = mapped_column(sa.Integer)
    model: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=RESERVED)
    # What the call may use at most; counts against the quota until the call settles.
    reserved_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    input_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    request_id: Mapped[str | None] = mapped_column(sa.String(128))
    # Until when an unsettled reservation counts (its call's longest run; a queued job's wait).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When Stripe accepted the meter event for this record; None until then.
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def total_tokens(self):
        return self.input_tokens + self.output_tokens
