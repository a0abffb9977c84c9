"""API keys, stored only as a SHA-256 hash and found by their public prefix."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db


class ApiKey(db.Model):
    __tablename__ = "api_keys"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    # Who created it; the key acts for the organization, with that user as the caller.
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # Always set by this release; nullable while the previous one may still insert keys (expand,
    # then contract): such a key acts for its creator's personal organization.
    org_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    # The start of the key, shown in listings and used to find the row; not secret.
    prefix: Mapped[str] = mapped_column(sa.String(32), unique=True, index=True, nullable=False)
    # Keys carry 256 random bits, so a fast hash is as safe as bcrypt here and costs nothing per request.
    key_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

