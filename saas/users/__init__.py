"""Users: the accounts table, passwords, the current user's own account (/api/v1/users/me).

The bottom of the feature packages: it imports no other feature. What other packages do when an
account changes (end sessions, revoke keys, create a Stripe customer) they attach to the
signals in ``saas.users.events``.
"""
from saas.users.routes import blp

__all__ = ["blp"]
