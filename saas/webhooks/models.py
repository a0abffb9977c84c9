"""Outbound webhooks: the organizations' endpoints, the events recorded for them (the outbox),
and one delivery per event and endpoint."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

# A delivery: waiting for its first attempt, waiting for a retry, done, or given up.
PENDING, RETRYING, SUCCEEDED, FAILED = "pending", "retrying", "succeeded", "failed"
DELIVERY_STATUSES = (PENDING, RETRYING, SUCCEEDED, FAILED)
OPEN_STATUSES = (PENDING, RETRYING)
# Why an endpoint was disabled: by an admin, a 410 Gone answer, or failing for too long.
DISABLED_BY_ADMIN, DISABLED_GONE, DISABLED_FAILING = "disabled", "gone", "failing"


class WebhookEndpoint(db.Model):
    """Where an organization wants its events, and the secret that signs them (encrypted: it must
    be read back to sign). After a rotation the previous secret signs too, until it expires."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    # The event types it subscribes to.
    events: Mapped[list] = mapped_column(sa.JSON, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True, server_default=sa.true())
    # DISABLED_BY_ADMIN, DISABLED_GONE or DISABLED_FAILING while disabled; None while enabled.
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(16))
    secret_encrypted: Mapped[str] = mapped_column(sa.Text, nullable=False)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(sa.Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Since when every attempt failed (None after a success): WEBHOOK_DISABLE_AFTER_HOURS counts from it.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, onupdate=utcnow)


class WebhookEvent(db.Model):
    """One event of an organization, stored in the transaction of the change it reports (the
    outbox). ``id`` is the ``webhook-id`` of every attempt to every endpoint; ``body`` the exact
    bytes sent and signed. Stored only when an endpoint subscribes to its type."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    org_id: Mapped[int] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    type: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # For events sent once per occasion (a quota exceeded once a month and plan): taken by the first.
    once_key: Mapped[str | None] = mapped_column(sa.String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )


class WebhookDelivery(db.Model):
    """An event on its way to one endpoint: its attempts so far and when the next one is due.

    ``attempts`` also names the job of the next attempt (``jobs.delivery_job_id``), so a job that
    comes late, twice, or after another made that attempt, finds it taken and does nothing.
    ``leased_until``: an attempt is in flight until then (a worker killed mid-attempt frees it)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
        sa.Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str] = mapped_column(
        sa.ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True, nullable=False
    )
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=PENDING, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.String(600))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event = relationship(WebhookEvent, lazy="joined")

    @property
    def event_type(self):
        return self.event.type
