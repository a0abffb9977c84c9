"""What happens to an account, for the packages above users to react to (blinker signals).

Each signal is sent with the user as sender, after the change is committed (but
``user_creating``). Receivers are connected in the reacting package's ``connect_signals()``,
called once by ``create_app``:

- ``user_creating``: sent before the new user is committed, in the same transaction: orgs adds
  the user's personal organization.
- ``user_registered``: billing queues the Stripe customer's creation; users mails the link
  that verifies the address.
- ``password_changed`` (``keep_session_id``: the session that made the change, or None, as after
  a reset by mail):
  auth ends every other session, apikeys revokes every key (a thief may have minted some).
- ``account_deactivated``: auth ends every session, apikeys revokes every key.
- ``email_changed``: billing gives the Stripe customer the new address (receipts go there).
- ``account_deleting``: sent inside the deletion's transaction, before the user's row is
  anonymised; receivers remove what is theirs without committing, and may refuse the deletion
  by raising a DomainError (orgs: the last owner of a team). auth ends the sessions, apikeys
  deletes the keys, orgs removes the memberships, ai deletes the jobs, mail the messages.
- ``account_deleted``: after the commit; billing queues the cancellation of the subscriptions.
- ``account_export``: each receiver returns ``{section: [rows]}`` of what it stores about the
  user, merged into the account export.
- ``account_audited`` (``action``, ``details``): sent inside the transaction of a change to the
  account's security (two-factor on or off, new recovery codes, an operator's reset); orgs writes
  it to the audit log (no organization), with the acting user and address of the request.
- ``mfa_disabling``: sent inside the transaction that would turn the user's two-factor off; orgs
  refuses it (409) while an organization of theirs requires two-factor.
- ``account_secured`` (``reason``): sent inside the transaction of an operator's reset of the
  account's second factor; auth ends every session of the user (without committing).
- ``login_checking`` (``user``: the account, or None when a social login would create it;
  ``method``: "password", "oauth"): sent with the address as sender before a password or social
  login becomes a session (or a new account); a receiver refuses it by raising ``LoginRefused``
  with its reason, which a password login answers as a 401 (``errors.reason``) and a social
  login's callback as ``?error=<reason>``. Enterprise SSO's ``sso_required`` (issue 26) is meant
  to connect here.
"""
from blinker import Namespace

from saas.core.errors import Unauthenticated


class LoginRefused(Unauthenticated):
    """A rule of another package refuses this login (``login_checking``); ``reason`` names it."""

    message = "This account cannot log in this way."

    def __init__(self, reason, message=None):
        self.reason = reason
        super().__init__(message, errors={"reason": [reason]})


_signals = Namespace()

user_creating = _signals.signal("user-creating")
user_registered = _signals.signal("user-registered")
password_changed = _signals.signal("password-changed")
account_deactivated = _signals.signal("account-deactivated")
email_changed = _signals.signal("email-changed")
account_deleting = _signals.signal("account-deleting")
account_deleted = _signals.signal("account-deleted")
account_export = _signals.signal("account-export")
account_audited = _signals.signal("account-audited")
mfa_disabling = _signals.signal("mfa-disabling")
account_secured = _signals.signal("account-secured")
login_checking = _signals.signal("login-checking")
