"""What enterprise single sign-on stores: an organization's claimed domains, its identity
provider connection, and the provider identities its people sign in with.

A domain is proved by a TXT record; it is verified for one organization at a time (a unique
index over verified domains), while any number of organizations may hold a pending claim to it
(a claim proves nothing, so it must not block the domain's real owner). The connection's client
secret is encrypted at rest (``saas.core.secrets``).
"""
from datetime import datetime

import sqlalchemy as sa
from email_validator import validate_email
from sqlalchemy.orm import Mapped, mapped_column

from saas.core.columns import IDS_NEVER_REUSED, UTCDateTime
from saas.core.time import utcnow
from saas.extensions import db

TXT_NAME_PREFIX = "_saas-challenge."
TXT_VALUE_PREFIX = "saas-verification="


def ascii_form(domain):
    """A domain as DNS spells it (an internationalised one in its xn-- form)."""
    return validate_email(f"postmaster@{domain}", check_deliverability=False, test_environment=True).ascii_domain


class OrgDomain(db.Model):
    """A domain an organization claims; ``verified_at`` once its TXT record was found."""

    __tablename__ = "org_domains"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "domain", name="uq_org_domains_org_id_domain"),
        # One organization at a time holds a verified domain.
        sa.Index(
            "uq_org_domains_verified_domain", "domain", unique=True,
            postgresql_where=sa.text("verified_at IS NOT NULL"), sqlite_where=sa.text("verified_at IS NOT NULL"),
        ),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True, nullable=False)
    # Lower case, ASCII (an internationalised name in its xn-- form), no final dot.
    domain: Mapped[str] = mapped_column(sa.String(253), nullable=False)
    # The random part of the TXT value: published in DNS by design, so not a secret.
    challenge: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )

    @property
    def verified(self):
        return self.verified_at is not None

    @property
    def txt_name(self):
        """Where the TXT record goes, as DNS spells it (an internationalised domain in its xn-- form)."""
        return f"{TXT_NAME_PREFIX}{ascii_form(self.domain)}"

    @property
    def txt_value(self):
        return f"{TXT_VALUE_PREFIX}{self.challenge}"


class SsoConnection(db.Model):
    """An organization's OpenID Connect identity provider (one per organization)."""

    __tablename__ = "sso_connections"

    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    issuer: Mapped[str] = mapped_column(sa.String(512), nullable=False)
    client_id: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    client_secret_encrypted: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # Accounts on the organization's verified domains may only log in through it.
    enforce: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    # The role an account gets when SSO makes it a member.
    default_role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now(), onupdate=utcnow
    )


class SsoIdentity(db.Model):
    """A person at an organization's identity provider, linked to one of our accounts: found by
    the organization, the issuer and the provider's stable id (``sub``), never by the address."""

    __tablename__ = "sso_identities"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "issuer", "subject", name="uq_sso_identities_org_id_issuer_subject"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False)
    issuer: Mapped[str] = mapped_column(sa.String(512), nullable=False)
    subject: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    # The address the provider gave at the last sign-in; shown, never used to find anyone.
    email: Mapped[str | None] = mapped_column(sa.String(320))
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=sa.func.now()
    )
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
