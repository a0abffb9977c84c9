"""An organization's identity provider: its OpenID Connect connection, checked when it is saved.

``PUT`` fetches the issuer's discovery document (it must name that very issuer and have the
endpoints a sign-in needs) before anything is stored; the client secret is encrypted at rest
(``saas.core.secrets``, re-encrypted by ``flask users reencrypt-secrets``) and never answered.
The providers built from connections are kept per process, keyed by everything they are built
from, so a changed connection is a new provider (with its own discovery and key caches).
"""
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app

from saas.core import secrets as secret_box
from saas.core.database import atomic
from saas.core.errors import Conflict, InvalidInput, NotFound
from saas.core.permissions import Permission
from saas.core.resolver import NotResolved, addresses
from saas.extensions import db
from saas.oauth.providers import OpenIDProvider, ProviderRefused, ProviderUnavailable
from saas.orgs import audit
from saas.orgs.service import PersonalOrganization, locked_role
from saas.sso import policy
from saas.sso.models import SsoConnection, SsoIdentity
from saas.users.models import User
from saas.webhooks.addresses import RefusedUrl, check_url, refusal

SCOPES = ("openid", "email", "profile")
DISPLAY_NAME = "Single sign-on"
CACHED_PROVIDERS = 256
DNS_SECONDS = 5.0


class NoConnection(NotFound):
    message = "The organization has no single sign-on connection."


class EnforcingWithoutBreakGlass(Conflict):
    message = ("Turn on two-factor authentication for your own account before enforcing SSO: owners with it keep "
               "password login (break glass), so a provider that fails cannot lock the organization out.")

    def __init__(self):
        super().__init__(errors={"reason": ["mfa_required_to_enforce"]})


class UnusableIssuer(InvalidInput):
    def __init__(self, problem):
        super().__init__(
            f"The issuer cannot be used: {problem}.",
            errors={"issuer": [f"The discovery document could not be used: {problem}."]},
        )


class SsoProvider(OpenIDProvider):
    """An organization's provider. Its ``email_verified`` counts unless the provider says the
    address is not verified: the organization's own directory speaks for addresses on the
    domains it has proved (Entra ID sends no such claim; Okta, Google and Keycloak send true)."""

    def email_verified(self, claims):
        return claims.get("email_verified") not in (False, "false")


class _Providers:
    """The process's providers, least recently used dropped first."""

    def __init__(self, timeout):
        self.timeout = timeout
        self._built = OrderedDict()
        self._lock = threading.Lock()

    def get(self, issuer, client_id, client_secret):
        key = (issuer, client_id, client_secret)
        with self._lock:
            provider = self._built.pop(key, None) or self.new(issuer, client_id, client_secret)
            self._built[key] = provider
            while len(self._built) > CACHED_PROVIDERS:
                self._built.popitem(last=False)
            return provider

    def new(self, issuer, client_id, client_secret):
        return SsoProvider(issuer, client_id, client_secret, display_name=DISPLAY_NAME, scopes=SCOPES,
                           timeout=self.timeout)


def init_app(app, oauth_settings):
    """Providers time out like social login's (OAUTH_TIMEOUT)."""
    app.extensions["sso_providers"] = _Providers(oauth_settings.timeout)


def _providers():
    return current_app.extensions["sso_providers"]


def provider_of(connection):
    return _providers().get(connection.issuer, connection.client_id,
                            secret_box.decrypt(connection.client_secret_encrypted))


def connection_of(org_id):
    return db.session.get(SsoConnection, org_id)


def get(org_id):
    connection = connection_of(org_id)
    if connection is None:
        raise NoConnection()
    return connection


def check_issuer(issuer, client_id, client_secret):
    """Fetch the discovery document now (never from a cache), once the issuer is known to be
    somewhere the server may go, and check the endpoints it will call: UnusableIssuer naming the
    problem."""
    _check_address(issuer, "the issuer")
    try:
        document = _providers().new(issuer, client_id, client_secret).endpoints()
    except (ProviderUnavailable, ProviderRefused) as problem:
        raise UnusableIssuer(problem) from None
    for endpoint in ("token_endpoint", "jwks_uri"):
        _check_address(str(document[endpoint]), f"its {endpoint}")


def _check_address(url, what):
    """The server fetches these URLs, which an owner chose: never inside its own network (SSRF),
    by the webhooks' rules (``saas.webhooks.addresses``), every address the host has now checked.
    A name that changes its answer later (DNS rebinding) is not caught here: the connection is an
    owner's, and what it fetches is never shown to them."""
    allow_loopback = current_app.config["SSO_ALLOW_LOOPBACK"]
    try:
        check_url(url, allow_loopback=allow_loopback)
        for address in addresses(urlsplit(url).hostname, lifetime=DNS_SECONDS):
            reason = refusal(address, allow_loopback=allow_loopback)
            if reason is not None:
                raise RefusedUrl(f"Must not point at {reason}.")
    except RefusedUrl as problem:
        raise UnusableIssuer(f"{what} {url}: {str(problem).rstrip('.')}") from None
    except NotResolved as problem:
        raise UnusableIssuer(f"{what} {url}: {problem}") from None


def save(org, actor_id, fields):
    """Create or replace the organization's connection, once its issuer checks out."""
    if org.personal:
        raise PersonalOrganization()
    check_issuer(fields["issuer"], fields["client_id"], fields["client_secret"])
    return _stored(org, actor_id, fields)


@atomic
def _stored(org, actor_id, fields):
    locked_role(org.id, actor_id, Permission.SSO_MANAGE)
    connection = connection_of(org.id)
    was_enforced = connection is not None and connection.enforce
    if fields["enforce"] and not was_enforced and not db.session.get(User, actor_id).mfa_enabled:
        raise EnforcingWithoutBreakGlass()
    if connection is None:
        connection = SsoConnection(org_id=org.id)
        db.session.add(connection)
        audit.record(org.id, "sso.enabled", target=f"org:{org.id}",
                     details={"issuer": fields["issuer"], "client_id": fields["client_id"]})
    elif _changed(connection, fields):
        audit.record(org.id, "sso.updated", target=f"org:{org.id}", details={
            "issuer": fields["issuer"], "client_id": fields["client_id"], "default_role": fields["default_role"],
            "secret_changed": secret_box.decrypt(connection.client_secret_encrypted) != fields["client_secret"],
        })
        # The people of another issuer are other identities.
        db.session.execute(sa.delete(SsoIdentity).where(SsoIdentity.org_id == org.id,
                                                        SsoIdentity.issuer != fields["issuer"]))
    connection.issuer, connection.client_id = fields["issuer"], fields["client_id"]
    connection.client_secret_encrypted = secret_box.encrypt(fields["client_secret"])
    connection.enforce, connection.default_role = fields["enforce"], fields["default_role"]
    db.session.flush()
    if fields["enforce"] and not was_enforced:
        audit.record(org.id, "sso.enforced", target=f"org:{org.id}")
        policy.enforced(org.id)
    elif was_enforced and not fields["enforce"]:
        audit.record(org.id, "sso.not_enforced", target=f"org:{org.id}")
    return connection


def _changed(connection, fields):
    """Whether ``fields`` change the connection in anything but ``enforce`` (audited on its own)."""
    stored = (connection.issuer, connection.client_id, connection.default_role)
    return (stored != (fields["issuer"], fields["client_id"], fields["default_role"])
            or secret_box.decrypt(connection.client_secret_encrypted) != fields["client_secret"])


@atomic
def remove(org, actor_id):
    """Turn the organization's SSO off: nothing is enforced any more, and its people's links to
    the provider are forgotten (a new connection links them again by their verified domain)."""
    locked_role(org.id, actor_id, Permission.SSO_MANAGE)
    connection = get(org.id)
    db.session.execute(sa.delete(SsoIdentity).where(SsoIdentity.org_id == org.id))
    db.session.delete(connection)
    audit.record(org.id, "sso.disabled", target=f"org:{org.id}", details={"issuer": connection.issuer})


def reencrypt_secrets(_sender=None):
    """``flask users reencrypt-secrets``: every client secret under the first key; how many."""
    connections = db.session.scalars(sa.select(SsoConnection)).all()
    for connection in connections:
        connection.client_secret_encrypted = secret_box.reencrypt(connection.client_secret_encrypted)
    return len(connections)
