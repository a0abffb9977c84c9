"""Server-side sessions: one row per login, the family every token of that login belongs to."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.core.columns import UTCDateTime
from saas.core.ids import new_uuid
from saas.core.time import utcnow
from saas.extensions import db
from saas.users.models import User


class AuthSession(db.Model):
    """A login and its token family.

    Access and refresh tokens carry the session id (``sid``). Only the refresh token whose
    ``jti`` equals ``refresh_jti`` may be exchanged; any other refresh token of the family is a
    replay. Revoking the row ends every token of the login at once.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    refresh_jti: Mapped[str] = mapped_column(sa.String(36), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    last_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(32))
    user_agent: Mapped[str | None] = mapped_column(sa.String(256))
    ip_address: Mapped[str | None] = mapped_column(sa.String(64))

    user: Mapped[User] = relationship(lazy="joined")

    @property
    def is_revoked(self):
        return self.revoked_at is not None
