"""Logging in through an organization's identity provider.

1. ``organization_for`` (``POST /auth/sso/start``): the organization that verified the address's
   domain and has SSO, and the ``authorize_url`` (this API's) that begins the browser flow.
2. ``sign_in_url`` (``GET /auth/sso/authorize``): the same browser flow as social login
   (``saas.oauth.flow``: state bound to the browser's cookie, nonce, PKCE), its flow recording
   the organization.
3. ``finish`` (``GET /auth/sso/callback``): the ID token checked as social login checks it, against
   that organization's connection; then its address must be on one of the organization's
   verified domains (``domain_not_allowed`` otherwise, and nothing is created). The account is
   found by the SSO identity (organization, issuer, subject); a new identity whose address has
   an account is linked to it (the organization proved it controls the domain: the one case
   where an address links accounts); a new address gets a new verified account. Either way the
   account becomes a member with the connection's ``default_role`` if it is not one. The front
   end gets the one-time code that ``POST /auth/oauth/exchange`` turns into a session whose
   methods include ``sso`` and which records the organization.
"""
import logging

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.core.actor import Actor, current_actor
from saas.core.database import atomic, fields_of, savepoint
from saas.core.errors import NotFound
from saas.core.time import utcnow
from saas.extensions import db
from saas.oauth import flow
from saas.oauth.models import LOGIN, SSO
from saas.oauth.providers import ProviderRefused, ProviderUnavailable
from saas.oauth.service import (
    ACCESS_DENIED,
    ACCOUNT_DISABLED,
    CALLBACK_ERRORS,
    EMAIL_NOT_VERIFIED,
    IDENTITY_IN_USE,
    INVALID_STATE,
    LOGIN_CODE_SECONDS,
    PROVIDER_ERROR,
    PROVIDER_UNAVAILABLE,
    FlowFailed,
    provider_failure,
)
from saas.orgs import audit, events as org_events
from saas.orgs.models import Membership, Organization
from saas.orgs.service import lock_org, role_of
from saas.sso.connection import connection_of, provider_of
from saas.sso.domains import domain_of, verified_domains_of
from saas.sso.models import OrgDomain, SsoConnection, SsoIdentity
from saas.users import events as user_events
from saas.users.models import User
from saas.users.passwords import unusable_password
from saas.users.service import EmailTaken, create_user
from saas.web.blueprint import SSO_METHOD

log = logging.getLogger(__name__)

DOMAIN_NOT_ALLOWED, SSO_NOT_CONFIGURED = "domain_not_allowed", "sso_not_configured"
# Every `?error=` an SSO login ends with; nothing else ever is.
SSO_CALLBACK_ERRORS = {
    **{reason: CALLBACK_ERRORS[reason] for reason in (
        ACCESS_DENIED, INVALID_STATE, PROVIDER_ERROR, PROVIDER_UNAVAILABLE, ACCOUNT_DISABLED, IDENTITY_IN_USE)},
    EMAIL_NOT_VERIFIED: "The organization's provider says the address is not verified: nothing was created.",
    DOMAIN_NOT_ALLOWED: "The provider's address for the person is not on one of the organization's verified "
    "domains: nothing was created or linked.",
    SSO_NOT_CONFIGURED: "No organization signs this address in with single sign-on (any more).",
}


class SsoFailed(FlowFailed):
    """An SSO login ends at the front end with ``?error=<reason>`` (one of SSO_CALLBACK_ERRORS)."""

    ERRORS = SSO_CALLBACK_ERRORS


class NoSsoForAddress(NotFound):
    message = "No organization signs this address in with single sign-on."


def organization_for(address):
    """The organization that verified the address's domain and has a connection; NoSsoForAddress otherwise."""
    org = db.session.scalar(
        sa.select(Organization)
        .join(OrgDomain, OrgDomain.org_id == Organization.id)
        .join(SsoConnection, SsoConnection.org_id == Organization.id)
        .where(OrgDomain.domain == domain_of(address), OrgDomain.verified_at.is_not(None))
    )
    if org is None:
        raise NoSsoForAddress()
    return org


def sign_in_url(address, *, browser, callback_url):
    """Where the browser of ``browser`` (its cookie value) goes to sign in at the provider of the
    address's organization; SsoFailed otherwise."""
    try:
        org = organization_for(address)
    except NoSsoForAddress:
        raise SsoFailed(SSO_NOT_CONFIGURED) from None
    try:
        return flow.start(provider_of(connection_of(org.id)), purpose=SSO, browser=browser,
                          redirect_uri=callback_url, provider_key=SSO, sso_org_id=org.id, login_hint=address)
    except (ProviderUnavailable, ProviderRefused) as problem:
        raise provider_failure(f"sso of organization {org.id}", problem, failed=SsoFailed) from None


def finish(*, browser, state, code=None, error=None, ip_address=None):
    """The provider's return to the callback: the one-time login code; SsoFailed otherwise."""
    began = flow.take_state(state, browser, SSO)
    if began is None or began.sso_org_id is None:
        raise SsoFailed(INVALID_STATE)
    org_id = began.sso_org_id
    if error is not None or not code:
        log.info("sso: the provider of organization %s answered the callback with error %r", org_id, error)
        raise SsoFailed(ACCESS_DENIED if error == ACCESS_DENIED else PROVIDER_ERROR)
    connection = connection_of(org_id)
    if connection is None:  # turned off since the flow began
        raise SsoFailed(SSO_NOT_CONFIGURED)
    try:
        identity = flow.identity_of(provider_of(connection), began, code)
    except (ProviderUnavailable, ProviderRefused) as problem:
        raise provider_failure(f"sso of organization {org_id}", problem, failed=SsoFailed) from None
    return _login_code(org_id, identity, ip_address)


@atomic
def _login_code(org_id, identity, ip_address):
    # The organization's lock first, as every change of its connection, domains and members takes
    # it: what is read below stays as it is until this login is done.
    lock_org(org_id)
    connection = connection_of(org_id)
    if connection is None or connection.issuer != identity.issuer:  # turned off or replaced meanwhile
        raise SsoFailed(SSO_NOT_CONFIGURED)
    if identity.email is None or domain_of(identity.email) not in verified_domains_of(org_id):
        log.info("sso: organization %s's provider vouched for an address off its verified domains", org_id)
        raise SsoFailed(DOMAIN_NOT_ALLOWED)
    if not identity.email_verified:
        raise SsoFailed(EMAIL_NOT_VERIFIED)
    linked = db.session.scalar(
        sa.select(SsoIdentity).where(SsoIdentity.org_id == org_id, SsoIdentity.issuer == identity.issuer,
                                     SsoIdentity.subject == identity.subject).with_for_update()
    )
    if linked is not None:
        user = db.session.get(User, linked.user_id)
        if not flow.may_log_in(user):
            raise SsoFailed(ACCOUNT_DISABLED)
        linked.email, linked.last_login_at = identity.email, utcnow()
    else:
        user = _account_for(org_id, identity, ip_address)
    current_actor.set(Actor(user.id, ip_address))
    _make_member(org_id, user, connection.default_role)
    return flow.issue_code(LOGIN, user, seconds=LOGIN_CODE_SECONDS, method=SSO_METHOD, sso_org_id=org_id)


def _account_for(org_id, identity, ip_address):
    """The account a new identity signs in to: the one with its address, linked now, or a new one."""
    user = db.session.scalar(sa.select(User).where(User.email == identity.email))
    if user is None:
        try:
            with savepoint():
                user = create_user(identity.email, None, identity.name, verified=True)
        except EmailTaken:  # the same address signed up at the same moment
            raise SsoFailed(IDENTITY_IN_USE) from None
        current_actor.set(Actor(user.id, ip_address))
        audit.record(org_id, "sso.account_created", target=f"user:{user.id}", details={"email": user.email})
    elif not flow.may_log_in(user):
        raise SsoFailed(ACCOUNT_DISABLED)
    else:
        if not user.email_verified:
            _take_over_unproven_account(user)
        audit.record(org_id, "sso.identity_linked", target=f"user:{user.id}", details={"email": user.email})
    try:
        with savepoint():
            db.session.add(SsoIdentity(org_id=org_id, issuer=identity.issuer, subject=identity.subject,
                                       user_id=user.id, email=identity.email, last_login_at=utcnow()))
            db.session.flush()
    except IntegrityError:  # the same identity signed in at the same moment in another flow
        raise SsoFailed(IDENTITY_IN_USE) from None
    return user


def _take_over_unproven_account(user):
    """An account whose owner never proved the address may have been registered by someone else
    before the organization's person came: its password stops working, and its sessions and API
    keys end (``password_changed``), so whoever made it keeps no way in. The address is proved now."""
    user.hashed_password = unusable_password()
    user.email_verified = True
    user.rotate_security_stamp()
    user_events.password_changed.send(user, keep_session_id=None)


def _make_member(org_id, user, role):
    """Under the organization's lock (``_login_code`` took it)."""
    if role_of(user.id, org_id) is not None:
        return
    db.session.add(Membership(org_id=org_id, user_id=user.id, role=role))
    db.session.flush()
    audit.record(org_id, "member.joined", target=f"user:{user.id}", details={"role": role, "via": "sso"})
    org_events.member_joined.send(org_id, user_id=user.id, email=user.email, role=role)
    org_events.members_changed.send(org_id)


def forget_identities(user, **_):
    """In an account's deletion: its SSO identities go (a later SSO login is a new account)."""
    db.session.execute(sa.delete(SsoIdentity).where(SsoIdentity.user_id == user.id))


IDENTITY_EXPORT = ("org_id", "issuer", "subject", "email", "created_at", "last_login_at")


def export_identities(user, **_):
    identities = db.session.scalars(
        sa.select(SsoIdentity).where(SsoIdentity.user_id == user.id).order_by(SsoIdentity.id)
    )
    return {"sso_identities": [fields_of(identity, IDENTITY_EXPORT) for identity in identities]}
