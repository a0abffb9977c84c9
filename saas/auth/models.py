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
    # How the login was authenticated, comma-separated: "password", "mfa", "oauth", "sso".
    # Null on sessions of the previous release, which were all password logins.
    methods: Mapped[str | None] = mapped_column(sa.String(64))
    # The organization whose single sign-on opened the session (its ``require_mfa`` is met by it).
    sso_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id", ondelete="SET NULL"))

    user: Mapped[User] = relationship(lazy="joined")

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    @property
    def method_list(self):
        return methods_of(self.methods)


def methods_of(stored):
    """The list of how a session was authenticated, from its stored ``methods``."""
    return stored.split(",") if stored else ["password"]


class LoginChallenge(db.Model):
    """A login waiting for its second factor: every way of logging in (password, a social
    provider, SSO) that reaches an account with two-factor on stops here. Its token (the
    ``mfa_token``) is stored only as a SHA-256; it works once, for MFA_TOKEN_SECONDS, for the
    account's security stamp it was issued under, and dies after ``MAX_ATTEMPTS`` wrong codes."""

    __tablename__ = "login_challenges"

    MAX_ATTEMPTS = 5

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # What the login proved so far (the session's methods, "mfa" is added).
    methods: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The organization whose single sign-on the login came through, passed on to the session.
    sso_org_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    stamp: Mapped[str] = mapped_column(sa.String(24), nullable=False)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
