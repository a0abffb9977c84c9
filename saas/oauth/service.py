"""Social login: signing in, signing up and linking with a provider, and the identities of an account.

The account is found by the provider identity (``UserIdentity``: provider, issuer, subject),
never by the address. At the callback:

- a known identity logs its account in (not when the account is deactivated or deleted);
- a new identity whose address no account has creates one, verified, with its personal
  organization and Stripe customer as at registration, and no password; but only when the
  provider vouches for the address (``email_verified``; GitHub's verified primary address):
  otherwise nothing is created (``email_not_verified``);
- a new identity whose address an account has links nothing and creates nothing
  (``account_exists``): the owner logs in and links the provider from their settings.

The front end then gets a one-time code (``?code=``) that ``exchange`` turns into exactly what a
password login answers, through ``complete_login`` (so an account with two-factor on gets the
second-factor step). A link goes through the same flow with a link intent and ends with a link
code that only a session of the account that asked can confirm. Every refusal at the callback is
one of ``CALLBACK_ERRORS``.
"""
import logging
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from saas.auth.service import complete_login
from saas.core.actor import Actor, current_actor
from saas.core.database import atomic, fields_of
from saas.core.errors import Conflict, DomainError, NotFound, Unauthenticated
from saas.core.time import utcnow
from saas.extensions import db
from saas.mail import queue_mail
from saas.oauth import flow
from saas.oauth.models import LINK, LINK_INTENT, LOGIN, UserIdentity
from saas.oauth.providers import ProviderRefused, ProviderUnavailable, configured_providers
from saas.users import events
from saas.users.events import LoginRefused
from saas.users.models import User
from saas.users.passwords import has_usable_password
from saas.users.service import EmailTaken, create_user
from saas.web.blueprint import OAUTH_METHOD

log = logging.getLogger(__name__)

LOGIN_CODE_SECONDS = 60
LINK_SECONDS = 600
ACCESS_DENIED, INVALID_STATE, PROVIDER_ERROR, PROVIDER_UNAVAILABLE = (
    "access_denied", "invalid_state", "provider_error", "provider_unavailable")
EMAIL_NOT_VERIFIED, ACCOUNT_EXISTS, IDENTITY_IN_USE, ACCOUNT_DISABLED, SSO_REQUIRED = (
    "email_not_verified", "account_exists", "identity_in_use", "account_disabled", "sso_required")
# Every `?error=` a social login ends with; nothing else ever is.
CALLBACK_ERRORS = {
    ACCESS_DENIED: "The person declined at the provider.",
    INVALID_STATE: "The sign-in was not begun in this browser, was used already or took over 10 minutes "
    "(or a link request expired or was used): start again.",
    PROVIDER_ERROR: "The provider answered with an error, or with something that does not prove who signed in "
    "(logged on the server).",
    PROVIDER_UNAVAILABLE: "The provider could not be reached, or failed: try again later.",
    EMAIL_NOT_VERIFIED: "The provider does not vouch for the address: no account was created.",
    ACCOUNT_EXISTS: "An account has this address: log in to it and link the provider from its settings.",
    IDENTITY_IN_USE: "This provider account is linked to another account already (or, linking, to this one).",
    ACCOUNT_DISABLED: "The account is deactivated or deleted.",
    SSO_REQUIRED: "The address's organization requires its single sign-on.",
}


class FlowFailed(Exception):
    """A social login or link ends at the front end with ``?error=<reason>`` (one of ``ERRORS``)."""

    ERRORS = CALLBACK_ERRORS

    def __init__(self, reason):
        if reason not in self.ERRORS:
            raise ValueError(f"not a documented callback error: {reason}")
        super().__init__(reason)
        self.reason = reason


class UnknownProvider(NotFound):
    message = "No such sign-in provider is configured."


class InvalidSignInCode(Unauthenticated):
    message = "The sign-in code is invalid, used or expired: sign in again."


class InvalidLinkCode(DomainError):
    status = 400
    message = "The link code is invalid, used, expired, or was not asked for by this account: link again."

    def __init__(self):
        super().__init__(errors={"code": [self.message]})


class IdentityInUse(Conflict):
    message = "This provider account is linked to an account already."

    def __init__(self):
        super().__init__(errors={"reason": [IDENTITY_IN_USE]})


class LastWayToLogIn(Conflict):
    message = ("This is the account's last way to log in: set a password (POST /api/v1/auth/password-reset) or link "
               "another provider first.")

    def __init__(self):
        super().__init__(errors={"reason": ["last_login_method"]})


class NoSuchIdentity(NotFound):
    message = "No such linked identity."


def init_app(app, settings):
    """The providers ``OAUTH_PROVIDERS`` names, built once (``settings``: config's ``OAuthSettings``)."""
    app.extensions["oauth_providers"] = configured_providers(settings)


def providers():
    """``{name: Provider}``, in the order of OAUTH_PROVIDERS."""
    return current_app.extensions["oauth_providers"]


def provider_named(name):
    provider = providers().get(name)
    if provider is None:
        raise UnknownProvider()
    return provider


# -- the browser flow ---------------------------------------------------------------------------


def sign_in_url(name, *, browser, callback_url, intent=None):
    """Where the browser of ``browser`` (its cookie value) goes to sign in with provider ``name``:
    a login, or with ``intent`` (a link intent's code), a link for the account that asked.
    UnknownProvider (404) first; then FlowFailed."""
    provider = provider_named(name)
    user = stamp = None
    purpose = LOGIN
    if intent is not None:
        user, stamp = _opened_link_intent(intent, name)
        purpose = LINK
    try:
        return flow.start(provider, purpose=purpose, browser=browser, redirect_uri=callback_url, user=user, stamp=stamp)
    except (ProviderUnavailable, ProviderRefused) as problem:
        raise provider_failure(name, problem) from None


@atomic
def _opened_link_intent(intent, name):
    row = flow.redeem_code(LINK_INTENT, intent)
    user = flow.holder(row)
    if user is None or row.provider != name:
        raise FlowFailed(INVALID_STATE)
    return user, row.stamp


def finish(name, *, browser, state, code=None, error=None, ip_address=None):
    """The provider's return to the callback: ``("code", one-time login code)`` or, for a link,
    ``("link_code", code)``. UnknownProvider (404) first; then FlowFailed. ``ip_address``: the
    browser's, for the audit event of a sign-up."""
    provider = provider_named(name)
    began = flow.take_state(state, browser, name)
    if began is None:
        raise FlowFailed(INVALID_STATE)
    if error is not None or not code:
        log.info("oauth: %s answered the callback with error %r", name, error)
        raise FlowFailed(ACCESS_DENIED if error == ACCESS_DENIED else PROVIDER_ERROR)
    try:
        identity = flow.identity_of(provider, began, code)
    except (ProviderUnavailable, ProviderRefused) as problem:
        raise provider_failure(name, problem) from None
    if began.purpose == LINK:
        return "link_code", _link_code(began, identity)
    return "code", _login_code(identity, ip_address)


def front_end_callback(**params):
    """The front end's page a social login ends on, with ``params`` (``code``, ``link_code`` or ``error``)."""
    config = current_app.config
    return f"{config['FRONTEND_URL'].rstrip('/')}{config['OAUTH_FRONTEND_CALLBACK_PATH']}?{urlencode(params)}"


def provider_failure(name, problem, failed=FlowFailed):
    """The ``failed`` (a FlowFailed) that a provider's ProviderUnavailable or ProviderRefused
    ends the flow with, logged."""
    unavailable = isinstance(problem, ProviderUnavailable)
    log.warning("oauth: %s %s: %s", name, "unavailable" if unavailable else "refused", problem)
    return failed(PROVIDER_UNAVAILABLE if unavailable else PROVIDER_ERROR)


def _linked(identity, *, for_update=False):
    query = sa.select(UserIdentity).where(
        UserIdentity.provider == identity.provider, UserIdentity.issuer == identity.issuer,
        UserIdentity.subject == identity.subject,
    )
    return db.session.scalar(query.with_for_update() if for_update else query)


def _check_login_allowed(email, user):
    """Other packages' rules about this login (``login_checking``: SSO required...)."""
    try:
        events.login_checking.send(email, user=user, method=OAUTH_METHOD)
    except LoginRefused as refusal:
        raise FlowFailed(refusal.reason if refusal.reason in CALLBACK_ERRORS else ACCOUNT_DISABLED) from None


@atomic
def _login_code(identity, ip_address):
    """The one-time login code for the account of ``identity``, made now if it is new and may be."""
    linked = _linked(identity, for_update=True)
    if linked is not None:
        user = db.session.get(User, linked.user_id)
        if not flow.may_log_in(user):
            raise FlowFailed(ACCOUNT_DISABLED)
        _check_login_allowed(user.email, user)
        linked.email, linked.last_login_at = identity.email or linked.email, utcnow()
    else:
        user = _sign_up(identity, ip_address)
    return flow.issue_code(LOGIN, user, seconds=LOGIN_CODE_SECONDS, method=OAUTH_METHOD)


def _sign_up(identity, ip_address):
    """A new account for a new identity whose provider vouches for an address no account has."""
    if not identity.email_verified:
        raise FlowFailed(EMAIL_NOT_VERIFIED)
    if db.session.scalar(sa.select(User.id).where(User.email == identity.email)) is not None:
        raise FlowFailed(ACCOUNT_EXISTS)
    _check_login_allowed(identity.email, None)
    try:
        user = create_user(identity.email, None, identity.name, verified=True)
        _add_identity(user, identity)
    except EmailTaken:
        raise FlowFailed(ACCOUNT_EXISTS) from None
    except IntegrityError:  # the same identity signed up at the same moment in another flow
        raise FlowFailed(IDENTITY_IN_USE) from None
    current_actor.set(Actor(user.id, ip_address))  # the new account is who acted
    _record(user, "oauth.signed_up", identity.provider)
    return user


def _add_identity(user, identity):
    linked = UserIdentity(
        user_id=user.id, provider=identity.provider, issuer=identity.issuer, subject=identity.subject,
        email=identity.email, last_login_at=utcnow(),
    )
    db.session.add(linked)
    db.session.flush()
    return linked


def exchange(code, *, user_agent=None, ip_address=None):
    """What ``POST /auth/login`` answers (a ``TokenPair``, or ``SecondFactorNeeded``) for a
    one-time login code; InvalidSignInCode (401) for any bad, used or expired one."""
    answer = _exchanged(code, user_agent=user_agent, ip_address=ip_address)
    if answer is None:
        raise InvalidSignInCode()
    return answer


@atomic
def _exchanged(code, *, user_agent, ip_address):
    row = flow.redeem_code(LOGIN, code)
    user = flow.holder(row)
    if user is None:
        return None  # the code, if it was one, is spent all the same
    return complete_login(user, row.method, sso_org_id=row.sso_org_id, user_agent=user_agent, ip_address=ip_address)


# -- linking ------------------------------------------------------------------------------------


@atomic
def request_link(user, name):
    """A link intent (single-use, ``LINK_SECONDS``) for ``user`` to link provider ``name``: the
    code the authorize URL carries."""
    provider_named(name)
    return flow.issue_code(LINK_INTENT, user, seconds=LINK_SECONDS, provider=name)


@atomic
def _link_code(began, identity):
    """The link code of a link's callback: nothing is linked until the account confirms it."""
    user = flow.holder(began)
    if user is None:
        raise FlowFailed(INVALID_STATE)
    if _linked(identity) is not None:
        raise FlowFailed(IDENTITY_IN_USE)
    return flow.issue_code(
        LINK, user, seconds=LINK_SECONDS, provider=identity.provider, issuer=identity.issuer,
        subject=identity.subject, email=identity.email,
    )


@atomic
def confirm_link(user, code):
    """Link the identity of a link code to ``user``, whose session must be the account's that
    asked (InvalidLinkCode otherwise, and nothing changes); IdentityInUse (409) when it is linked
    already. Audited; a notice is mailed."""
    row = flow.redeem_code(LINK, code, user_id=user.id)
    if flow.holder(row) is None:
        raise InvalidLinkCode()
    if _linked(row) is not None:
        raise IdentityInUse()
    try:
        linked = _add_identity(user, row)
    except IntegrityError:
        raise IdentityInUse() from None
    _record(user, "oauth.identity_linked", row.provider)
    _notify(user, "identity_linked", row.provider)
    return linked


def identities_of(user):
    return db.session.scalars(
        sa.select(UserIdentity).where(UserIdentity.user_id == user.id).order_by(UserIdentity.created_at, UserIdentity.id)
    ).all()


@atomic
def unlink(user, identity_id):
    """Unlink one of the user's identities; 409 when it is the account's last way to log in (no
    password and no other identity). Under the account's row lock, so two unlinks at once cannot
    both take what the other counted on. Audited; a notice is mailed."""
    hashed_password = db.session.scalar(sa.select(User.hashed_password).where(User.id == user.id).with_for_update())
    linked = db.session.scalar(
        sa.select(UserIdentity).where(UserIdentity.id == identity_id, UserIdentity.user_id == user.id)
    )
    if linked is None:
        raise NoSuchIdentity()
    others = db.session.scalar(
        sa.select(sa.func.count()).select_from(UserIdentity)
        .where(UserIdentity.user_id == user.id, UserIdentity.id != linked.id)
    )
    if not others and not has_usable_password(hashed_password):
        raise LastWayToLogIn()
    db.session.delete(linked)
    _record(user, "oauth.identity_unlinked", linked.provider)
    _notify(user, "identity_unlinked", linked.provider)


def display_name(name):
    provider = providers().get(name)
    return provider.display_name if provider is not None else name


def _record(user, action, provider):
    events.account_audited.send(user, action=action, details={"provider": provider})


def _notify(user, template, provider):
    """A notice in the use case's transaction, sent once it commits."""
    queue_mail(template, user.email, user_id=user.id, context={"provider": display_name(provider)})


# -- what happens to an account -----------------------------------------------------------------


def connect_signals():
    events.account_deleting.connect(_forget_identities, weak=False)
    events.account_export.connect(_export_identities, weak=False)


def _forget_identities(user, **_):
    """In the deletion's transaction: the identities go (a later sign-in with them is a new
    account), and any flow or code of the account."""
    db.session.execute(sa.delete(UserIdentity).where(UserIdentity.user_id == user.id))
    flow.forget_of(user.id)


IDENTITY_EXPORT = ("provider", "issuer", "subject", "email", "created_at", "last_login_at")


def _export_identities(user, **_):
    return {"identities": [fields_of(identity, IDENTITY_EXPORT) for identity in identities_of(user)]}
