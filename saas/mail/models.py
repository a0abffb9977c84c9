"""The outbox: every message the app sends is a row first, then a job that sends it."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

PENDING, SENT, CANCELLED = "pending", "sent", "cancelled"


class MailMessage(db.Model):
    """A message to send: which template, to whom, with what. Its link (a token) is minted when
    it is sent, so no token is ever stored, in PostgreSQL or in Redis."""

    __tablename__ = "mail_messages"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    template: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    to_address: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    # The account the message is about (deleted with it); None for mail to no account (a test).
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # What the template needs besides the link; never a secret.
    context: Mapped[dict] = mapped_column(sa.JSON, nullable=False, default=dict)
    # The kind of link the message carries (``register_link``), minted at sending time.
    link: Mapped[str | None] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=PENDING, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now(), index=True
    )
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
