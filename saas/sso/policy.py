"""SSO required: what ``enforce`` does to the accounts on an organization's verified domains.

- A password or social login of such an account is refused (``login_checking``: a 401 with
  ``errors.reason = ["sso_required"]``, or ``?error=sso_required`` at a social login's callback),
  and so is a social sign-up with such an address. A password reset for it mails nothing.
- Break glass: an owner of the organization who has two-factor on keeps password login (a
  provider that breaks cannot lock the organization out).
- When ``enforce`` is turned on, or a domain is verified while it is on, the sessions of those
  accounts that did not come through this organization's SSO end, with the logins waiting for
  their second factor and the social logins' unexchanged codes: what was opened before the rule
  cannot outlive it. Break-glass owners keep theirs.
"""
import sqlalchemy as sa

from saas.auth.models import AuthSession, LoginChallenge
from saas.core.time import utcnow
from saas.extensions import db
from saas.oauth.models import LOGIN, OAuthCode
from saas.orgs.models import OWNER, Membership
from saas.sso.models import OrgDomain, SsoConnection
from saas.users import events as user_events
from saas.users.events import LoginRefused
from saas.users.models import User
from saas.web.blueprint import PASSWORD_METHOD, SSO_METHOD

SSO_REQUIRED = "sso_required"
ENDED_REASON = "sso-required"


class SsoRequired(LoginRefused):
    def __init__(self):
        super().__init__(SSO_REQUIRED, "Your organization requires its single sign-on: log in with it "
                                       "(POST /api/v1/auth/sso/start).")


def connect_signals():
    user_events.login_checking.connect(_refuse_outside_sso, weak=False)


def enforcing_org_of(address):
    """The id of the organization that verified the address's domain and enforces its SSO, or None."""
    domain = address.rsplit("@", 1)[-1]
    return db.session.scalar(
        sa.select(OrgDomain.org_id)
        .join(SsoConnection, SsoConnection.org_id == OrgDomain.org_id)
        .where(OrgDomain.domain == domain, OrgDomain.verified_at.is_not(None), SsoConnection.enforce.is_(True))
    )


def may_break_glass(user, org_id):
    """An owner of the organization with two-factor on keeps password login."""
    if user is None or not user.mfa_enabled:
        return False
    return db.session.scalar(
        sa.select(Membership.id).where(Membership.org_id == org_id, Membership.user_id == user.id,
                                       Membership.role == OWNER)
    ) is not None


def _refuse_outside_sso(address, *, user=None, method=None, **_):
    if method == SSO_METHOD:
        return
    org_id = enforcing_org_of(address)
    if org_id is None:
        return
    if method == PASSWORD_METHOD and may_break_glass(user, org_id):
        return
    raise SsoRequired()


def enforced(org_id):
    """In the transaction that turns ``enforce`` on: end what was opened outside the SSO."""
    _end_logins_outside_sso(org_id, _verified_domains(org_id))


def domain_verified(org_id, domain):
    """In the transaction that verifies a domain: held to the SSO at once if it is enforced."""
    if db.session.scalar(sa.select(SsoConnection.enforce).where(SsoConnection.org_id == org_id)):
        _end_logins_outside_sso(org_id, [domain])


def _verified_domains(org_id):
    return db.session.scalars(
        sa.select(OrgDomain.domain).where(OrgDomain.org_id == org_id, OrgDomain.verified_at.is_not(None))
    ).all()


def _end_logins_outside_sso(org_id, domains):
    if not domains:
        return
    on_domains = sa.or_(*(User.email.endswith(f"@{domain}", autoescape=True) for domain in domains))
    break_glass = (
        sa.select(Membership.user_id).join(User, User.id == Membership.user_id)
        .where(Membership.org_id == org_id, Membership.role == OWNER, User.mfa_enabled.is_(True))
    )
    held = sa.select(User.id).where(on_domains, User.id.not_in(break_glass))
    not_through_this_sso = sa.or_(AuthSession.sso_org_id.is_(None), AuthSession.sso_org_id != org_id)
    db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.user_id.in_(held), AuthSession.revoked_at.is_(None), not_through_this_sso)
        .values(revoked_at=utcnow(), revoked_reason=ENDED_REASON)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.delete(LoginChallenge)
        .where(LoginChallenge.user_id.in_(held),
               sa.or_(LoginChallenge.sso_org_id.is_(None), LoginChallenge.sso_org_id != org_id))
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        sa.delete(OAuthCode)
        .where(OAuthCode.user_id.in_(held), OAuthCode.kind == LOGIN,
               sa.or_(OAuthCode.sso_org_id.is_(None), OAuthCode.sso_org_id != org_id))
        .execution_options(synchronize_session=False)
    )
