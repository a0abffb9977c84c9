"""Enterprise single sign-on per organization: verified domains, an OpenID Connect provider, SSO
required.

Above oauth, whose browser flow, ID-token checks, one-time codes and exchange it reuses with its
own callback and its own way of finding the account (``login``); ``domains`` proves a domain by
DNS, ``connection`` keeps the provider, ``policy`` holds accounts on enforced domains to it.
"""
from saas.core.secrets import reencrypting
from saas.sso import connection, login, policy
from saas.users import events as user_events
from saas.sso.routes import blp, org_sso_blp

__all__ = ["blp", "org_sso_blp", "connect_signals", "init_app"]


def init_app(app, oauth_settings):
    connection.init_app(app, oauth_settings)


def connect_signals():
    policy.connect_signals()
    reencrypting.connect(connection.reencrypt_secrets, weak=False)
    user_events.account_deleting.connect(login.forget_identities, weak=False)
    user_events.account_export.connect(login.export_identities, weak=False)
