"""Chat completions run in the background: the request, its state and its outcome."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import UTCDateTime
from saas.core.ids import new_uuid
from saas.core.time import utcnow
from saas.extensions import db

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"


class AiJob(db.Model):
    """Kept in the database, so a job and its result outlive restarts of the app and of Redis."""

    __tablename__ = "ai_jobs"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # Whose quota the job uses. No foreign key: a deleted organization's jobs keep its id, so
    # they are never taken for rows the previous release wrote without one (saas/sweeps.py).
    org_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=QUEUED)
    model: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    max_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    messages: Mapped[list] = mapped_column(sa.JSON, nullable=False)
    result: Mapped[dict | None] = mapped_column(sa.JSON)
    error: Mapped[dict | None] = mapped_column(sa.JSON)
    # The quota reservation taken when the job was submitted (the job settles it).
    usage_record_id: Mapped[int | None] = mapped_column(sa.ForeignKey("usage_records.id", ondelete="SET NULL"))
    # The id of the request that submitted the job; its usage record carries it too.
    request_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
