"""Social login: sign in with Google, GitHub, Microsoft or any OpenID Connect provider, and the
provider identities linked to an account.

Above auth (a sign-in ends in ``complete_login``), below billing. ``flow`` (state bound to the
browser, PKCE, nonce, one-time codes) is what enterprise SSO reuses with its own callback.
"""
from saas.oauth.routes import blp, identities_blp
from saas.oauth.service import connect_signals, init_app

__all__ = ["blp", "identities_blp", "connect_signals", "init_app"]
