"""Provider identities linked to accounts, and the short-lived rows of the browser flow.

Every secret the flow hands out (the ``state``, the browser's cookie, the one-time codes) is
stored only as its SHA-256: a copy of the database opens nothing. The PKCE code verifier, which
the app must send back to the provider, is kept encrypted (``saas.core.secrets``).
"""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

# What a flow is for (``OAuthState.purpose``) and what a one-time code stands for
# (``OAuthCode.kind``).
LOGIN, LINK, LINK_INTENT = "login", "link", "link_intent"


class UserIdentity(db.Model):
    """An account at a provider, linked to one of ours: found by the provider's name, its issuer
    (the OpenID Connect issuer, GitHub's web address) and the provider's stable id of the person
    (``sub``; GitHub's numeric id), never by the address."""

    __tablename__ = "user_identities"
    __table_args__ = (
        sa.UniqueConstraint("provider", "issuer", "subject", name="uq_user_identities_provider_issuer_subject"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    provider: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    issuer: Mapped[str] = mapped_column(sa.String(512), nullable=False)
    subject: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # The address the provider gave at the last sign-in; shown, never used to find anyone.
    email: Mapped[str | None] = mapped_column(sa.String(320))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthState(db.Model):
    """A browser at a provider's sign-in page: what its return to the callback must match.

    Found by the SHA-256 of the ``state`` sent to the provider, and only together with the
    SHA-256 of the browser's cookie set when the flow began, so a callback opened in another
    browser finds nothing (login CSRF). Deleted when used: a state works once."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # LOGIN or LINK (issue 26 adds its own for SSO), and the provider it went to.
    purpose: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    provider: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The SHA-256 of the OpenID Connect nonce (null for GitHub, which has no ID token).
    nonce_hash: Mapped[str | None] = mapped_column(sa.String(64))
    code_verifier_encrypted: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # The callback URL sent to the provider, which the code exchange must repeat exactly.
    redirect_uri: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # A link's account, and its security stamp when the link was asked for.
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    stamp: Mapped[str | None] = mapped_column(sa.String(24))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class OAuthCode(db.Model):
    """A one-time code of the flow, found by its SHA-256 and deleted when used:

    - ``login``: the callback's ``?code=``, exchanged for what a login answers
      (``method`` says how the account proved itself: "oauth", later "sso");
    - ``link_intent``: a user's request to link a provider, opened by their browser;
    - ``link``: the callback's ``?link_code=``, the identity to link (``provider``, ``issuer``,
      ``subject``, ``email``), confirmed under the session of the account that asked.

    Each is bound to the account's security stamp as it was when issued."""

    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    stamp: Mapped[str] = mapped_column(sa.String(24), nullable=False)
    method: Mapped[str | None] = mapped_column(sa.String(16))
    provider: Mapped[str | None] = mapped_column(sa.String(64))
    issuer: Mapped[str | None] = mapped_column(sa.String(512))
    subject: Mapped[str | None] = mapped_column(sa.String(255))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
